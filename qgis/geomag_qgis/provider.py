"""The "GeoMag" Processing provider: its two algorithms and its settings (Processing > Options >
Providers > GeoMag: the server's URL and token)."""

from qgis.core import QgsProcessingProvider

from .algorithms import ClassifyAlgorithm, ParseAlgorithm
from .client import DEFAULT_URL, SETTING_TOKEN, SETTING_URL


class GeoMagProvider(QgsProcessingProvider):
    def id(self):
        return "geomag"

    def name(self):
        return "GeoMag"

    def longName(self):
        return "GeoMag (a client of geomag serve)"

    def load(self):
        try:  # the Processing plugin's options dialog; qgis_process runs without it as well
            from processing.core.ProcessingConfig import ProcessingConfig, Setting

            ProcessingConfig.addSetting(
                Setting(self.name(), SETTING_URL, "Server URL (geomag serve)", DEFAULT_URL)
            )
            ProcessingConfig.addSetting(
                Setting(self.name(), SETTING_TOKEN, "Server token (geomag serve --token)", "")
            )
            ProcessingConfig.readSettings()
        except ImportError:
            pass
        self.refreshAlgorithms()
        return True

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(SETTING_URL)
            ProcessingConfig.removeSetting(SETTING_TOKEN)
        except ImportError:
            pass

    def loadAlgorithms(self):
        self.addAlgorithm(ParseAlgorithm())
        self.addAlgorithm(ClassifyAlgorithm())
