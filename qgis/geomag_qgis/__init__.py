"""GeoMag for QGIS: a Processing provider that is an HTTP client of `geomag serve` (no torch here)."""


def classFactory(iface):
    from .plugin import GeoMagPlugin

    return GeoMagPlugin(iface)
