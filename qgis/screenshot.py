"""The README's QGIS screenshot: a real QGIS window (under Xvfb) with a result layer of geomag:parse over
its raster and the Processing toolbox open on GeoMag. Run with QGIS's own Python:

    GEOMAG_SHOT="RASTER.tif MASKS.gpkg OUT.png" xvfb-run -a -s "-screen 0 1400x900x24" \
        qgis.bin --nologo --code qgis/screenshot.py
"""

import os

from qgis.core import QgsFillSymbol, QgsProject, QgsRasterLayer, QgsSingleSymbolRenderer, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QLineEdit
from qgis.utils import iface

raster_path, masks_path, out_path = os.environ["GEOMAG_SHOT"].split()
raster = QgsRasterLayer(raster_path, os.path.basename(raster_path))
QgsProject.instance().addMapLayer(raster)
masks = QgsVectorLayer(f"{masks_path}|layername=masks", "geomag:parse masks", "ogr")
style = {"color": "230,25,75,110", "outline_color": "230,25,75,255", "outline_width": "0.6"}
masks.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(style)))
QgsProject.instance().addMapLayer(masks)
QgsProject.instance().setCrs(raster.crs())


def frame():
    iface.mapCanvas().setExtent(raster.extent())
    iface.mapCanvas().refresh()
    toolbox = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
    if toolbox is not None:
        toolbox.show()
        search = toolbox.findChild(QLineEdit)
        if search is not None:
            search.setText("GeoMag")
    browser = iface.mainWindow().findChild(QDockWidget, "Browser")
    if browser is not None:
        browser.hide()


def grab():
    iface.mainWindow().grab().save(out_path)
    os._exit(0)


iface.mainWindow().showMaximized()
QTimer.singleShot(4000, frame)
QTimer.singleShot(12000, grab)
