"""The provider's algorithms: "Parse image with a prompt" and "Classify prompt granularity".

Both send the request to `geomag serve` and build QGIS outputs from its answer; they decide nothing
that the pipeline decides (granularity, MagCrop, masks all come from the server)."""

import os

from osgeo import gdal, ogr, osr
from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from .client import GeoMagServer, decode_rle, server_token, server_url

GRANULARITIES = ["auto", "image", "region", "pixel"]
SENT_AS_IS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")  # what the server reads (anything else: GTiff)


def _advanced(parameter):
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def _plan_lines(body):
    """The plan's decision in words (as the web page shows it): granularity, MagCrop, crop boxes."""
    extra = body.get("extra", {})
    probs = extra.get("granularity_probabilities")
    why = ", ".join(f"{k} {v:.2f}" for k, v in probs.items()) if probs else "forced"
    lines = [f"granularity: {body.get('granularity')} ({why})"]
    magcrop = extra.get("magcrop")
    if isinstance(magcrop, str) and magcrop.startswith("skipped: "):
        lines.append(f"MagCrop kept the whole image: {magcrop[len('skipped: ') :]}")
    else:
        lines.append(f"MagCrop: {'on' if magcrop else 'off'}")
    for name, box in body.get("boxes", {}).items():
        lines.append(f"{name}: pixels {box}")
    if extra.get("no_mask"):
        lines.append(f"no mask: {extra['no_mask']}")
    return lines


class ParseAlgorithm(QgsProcessingAlgorithm):
    INPUT, PROMPT, EXTENT, MAGCROP, GRANULARITY, SERVER = (
        "INPUT",
        "PROMPT",
        "EXTENT",
        "MAGCROP",
        "GRANULARITY",
        "SERVER",
    )
    OUTPUT, OUTPUT_MASKS = "OUTPUT", "OUTPUT_MASKS"
    ANSWER, MASK_COUNT, GRANULARITY_OUT = "ANSWER", "MASK_COUNT", "GRANULARITY_OUT"

    def name(self):
        return "parse"

    def displayName(self):
        return "Parse image with a prompt"

    def shortHelpString(self):
        return (
            "Sends the raster (or the part inside the extent) and the prompt to a running GeoMag server "
            "(geomag serve; URL and token in Processing > Options > Providers > GeoMag) and returns its "
            "masks as polygons in the raster's CRS (fields: mask = the number the answer refers to, "
            "phrase, class = the prompt's granularity, score), the masks as a raster (one 0/1 band per "
            "mask) and the answer text."
        )

    def createInstance(self):
        return ParseAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Image (raster layer or file)"))
        self.addParameter(
            QgsProcessingParameterString(self.PROMPT, "Prompt", defaultValue="Segment the trees.")
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.EXTENT, "Region to look at (empty: the whole raster)", optional=True
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.MAGCROP, "MagCrop", defaultValue=True))
        self.addParameter(
            _advanced(
                QgsProcessingParameterEnum(
                    self.GRANULARITY,
                    "Granularity (auto: the classifier decides)",
                    GRANULARITIES,
                    defaultValue=0,
                )
            )
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterString(
                    self.SERVER, "Server URL (empty: the provider's setting)", optional=True
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Masks", QgsProcessing.TypeVectorPolygon)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_MASKS, "Mask raster", optional=True, createByDefault=True
            )
        )
        self.addOutput(QgsProcessingOutputString(self.ANSWER, "Answer"))
        self.addOutput(QgsProcessingOutputString(self.GRANULARITY_OUT, "Granularity"))
        self.addOutput(QgsProcessingOutputNumber(self.MASK_COUNT, "Number of masks"))

    def processAlgorithm(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException("the input is not a raster QGIS can open")
        path = layer.source().split("|")[0]
        if not os.path.isfile(path):
            raise QgsProcessingException(f"the raster {layer.name()} is not a local file GeoMag can upload")
        prompt = self.parameterAsString(parameters, self.PROMPT, context).strip()
        if not prompt:
            raise QgsProcessingException("type a prompt")
        dataset = gdal.Open(path)
        if dataset is None:
            raise QgsProcessingException(f"GDAL cannot open {path}")
        upload = path
        if parameters.get(self.EXTENT) not in (None, ""):
            region = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            region = region.intersect(layer.extent())
            if region.isEmpty():
                raise QgsProcessingException("the extent does not overlap the raster")
            upload = QgsProcessingUtils.generateTempFilename("geomag_region.tif")
            dataset = gdal.Translate(
                upload, dataset, format="GTiff",
                projWin=[region.xMinimum(), region.yMaximum(), region.xMaximum(), region.yMinimum()],
            )  # fmt: skip
            if dataset is None or dataset.RasterXSize == 0 or dataset.RasterYSize == 0:
                raise QgsProcessingException("the extent holds no whole pixel of the raster")
            dataset.FlushCache()
            feedback.pushInfo(f"region: {dataset.RasterXSize} x {dataset.RasterYSize} px of {layer.name()}")
        elif os.path.splitext(path)[1].lower() not in SENT_AS_IS:
            upload = QgsProcessingUtils.generateTempFilename("geomag_image.tif")
            dataset = gdal.Translate(upload, dataset, format="GTiff")
            dataset.FlushCache()

        url = server_url(self.parameterAsString(parameters, self.SERVER, context))
        server = GeoMagServer(url, server_token(), feedback)
        granularity = GRANULARITIES[self.parameterAsEnum(parameters, self.GRANULARITY, context)]
        fields = {"prompt": prompt, "granularity": granularity,
                  "magcrop": "true" if self.parameterAsBool(parameters, self.MAGCROP, context) else "false"}  # fmt: skip
        feedback.pushInfo(f"asking {url}: {prompt!r} on {dataset.RasterXSize} x {dataset.RasterYSize} px")
        feedback.setProgress(5)
        body = server.parse(upload, fields)
        feedback.setProgress(70)
        answer = body.get("display_text", body.get("text", ""))
        feedback.pushInfo(f"answer: {answer}")
        for line in _plan_lines(body):
            feedback.pushInfo(line)

        masks = [(entry, decode_rle(entry["rle"])) for entry in body.get("masks", [])]
        size = (dataset.RasterXSize, dataset.RasterYSize)
        for _, mask in masks:
            if (mask.shape[1], mask.shape[0]) != size:
                raise QgsProcessingException(
                    f"the server's mask is {mask.shape[1]}x{mask.shape[0]}, the image {size}"
                )

        results = {
            self.ANSWER: answer,
            self.GRANULARITY_OUT: body.get("granularity", ""),
            self.MASK_COUNT: len(masks),
        }
        out_fields = QgsFields()
        out_fields.append(QgsField("mask", QVariant.Int))
        out_fields.append(QgsField("phrase", QVariant.String))
        out_fields.append(QgsField("class", QVariant.String))
        out_fields.append(QgsField("score", QVariant.Double))
        out_fields.append(QgsField("prompt", QVariant.String))
        sink, dest = self.parameterAsSink(
            parameters, self.OUTPUT, context, out_fields, QgsWkbTypes.MultiPolygon, layer.crs()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for number, (entry, mask) in enumerate(masks, start=1):
            if feedback.isCanceled():
                break
            feature = QgsFeature(out_fields)
            feature.setGeometry(_polygons(mask, dataset))
            feature.setAttributes([number, entry.get("phrase", ""), body.get("granularity", ""),
                                   float(entry.get("score", float("nan"))), prompt])  # fmt: skip
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
            feedback.setProgress(70 + 25 * number / max(1, len(masks)))
        results[self.OUTPUT] = dest

        raster_out = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASKS, context)
        if raster_out:
            _write_mask_raster(raster_out, [m for _, m in masks], dataset)
            results[self.OUTPUT_MASKS] = raster_out
        feedback.setProgress(100)
        return results


def _mem_band(mask, dataset):
    mem = gdal.GetDriverByName("MEM").Create("", mask.shape[1], mask.shape[0], 1, gdal.GDT_Byte)
    mem.SetGeoTransform(dataset.GetGeoTransform())
    mem.SetProjection(dataset.GetProjection())
    mem.GetRasterBand(1).WriteArray(mask)
    return mem


def _polygons(mask, dataset):
    """The mask's pixels as one MultiPolygon in the raster's coordinates (GDAL's polygonize: edges
    on pixel boundaries, 4-connected)."""
    mem = _mem_band(mask, dataset)
    band = mem.GetRasterBand(1)
    vectors = ogr.GetDriverByName("Memory").CreateDataSource("")
    srs = osr.SpatialReference()
    if dataset.GetProjection():
        srs.ImportFromWkt(dataset.GetProjection())
    out = vectors.CreateLayer("mask", srs=srs, geom_type=ogr.wkbPolygon)
    out.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    gdal.Polygonize(band, band, out, 0, [], callback=None)
    parts = [QgsGeometry.fromWkt(f.GetGeometryRef().ExportToWkt()) for f in out]
    geometry = QgsGeometry.collectGeometry(parts)
    geometry.convertToMultiType()
    return geometry


def _write_mask_raster(path, masks, dataset):
    """One uint8 0/1 band per mask on the uploaded image's grid (one empty band when there is none)."""
    driver = gdal.GetDriverByName("GTiff")
    out = driver.Create(path, dataset.RasterXSize, dataset.RasterYSize, max(1, len(masks)), gdal.GDT_Byte,
                        ["COMPRESS=LZW"])  # fmt: skip
    out.SetGeoTransform(dataset.GetGeoTransform())
    out.SetProjection(dataset.GetProjection())
    for i, mask in enumerate(masks, start=1):
        band = out.GetRasterBand(i)
        band.WriteArray(mask)
        band.SetDescription(f"mask {i}")
    out.FlushCache()
    out = None


class ClassifyAlgorithm(QgsProcessingAlgorithm):
    PROMPT, SERVER, GRANULARITY_OUT = "PROMPT", "SERVER", "GRANULARITY"

    def name(self):
        return "classify"

    def displayName(self):
        return "Classify prompt granularity"

    def shortHelpString(self):
        return "Whether a prompt is about the whole image, a region or pixels (GeoMag's classifier, on the server)."

    def createInstance(self):
        return ClassifyAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterString(self.PROMPT, "Prompt", defaultValue="Is there a ship?")
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterString(
                    self.SERVER, "Server URL (empty: the provider's setting)", optional=True
                )
            )
        )
        self.addOutput(QgsProcessingOutputString(self.GRANULARITY_OUT, "Granularity"))

    def processAlgorithm(self, parameters, context, feedback):
        prompt = self.parameterAsString(parameters, self.PROMPT, context).strip()
        if not prompt:
            raise QgsProcessingException("type a prompt")
        url = server_url(self.parameterAsString(parameters, self.SERVER, context))
        body = GeoMagServer(url, server_token(), feedback).classify(prompt)
        probs = ", ".join(f"{k} {v:.2f}" for k, v in body.get("probabilities", {}).items())
        feedback.pushInfo(f"{prompt!r}: {body['granularity']} ({probs})")
        return {self.GRANULARITY_OUT: body["granularity"]}
