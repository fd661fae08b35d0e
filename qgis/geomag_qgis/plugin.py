"""The plugin object QGIS loads: it only registers the Processing provider (`initProcessing` is what
qgis_process calls; the desktop calls `initGui`)."""

from qgis.core import QgsApplication

from .provider import GeoMagProvider


class GeoMagPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = GeoMagProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
