"""Run geomag:parse with a feedback that presses Cancel after CANCEL_S seconds (QGIS's Python:
`python3 qgis/cancel_check.py SERVER IMAGE CANCEL_S`); prints one JSON line: how long the algorithm
ran and what it said. tests/test_qgis.py uses it to check that Cancel stops a running request."""

import json
import os
import sys
import threading
import time

from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
server, image, cancel_after = sys.argv[1], sys.argv[2], float(sys.argv[3])
app = QgsApplication([], False)
app.initQgis()
from geomag_qgis.algorithms import ParseAlgorithm  # noqa: E402 (after QgsApplication)

algorithm = ParseAlgorithm()
algorithm.initAlgorithm()
feedback = QgsProcessingFeedback()
# from another thread, as QGIS's Cancel button does while the algorithm runs in a task's thread
threading.Timer(cancel_after, feedback.cancel).start()
params = {"INPUT": image, "PROMPT": "Segment the trees.", "MAGCROP": False, "GRANULARITY": 3, "SERVER": server,
          "OUTPUT": "memory:", "OUTPUT_MASKS": None}  # fmt: skip
started = time.perf_counter()
try:
    algorithm.processAlgorithm(params, QgsProcessingContext(), feedback)
    message = "finished"
except QgsProcessingException as exc:
    message = str(exc)
print(json.dumps({"seconds": time.perf_counter() - started, "message": message}))
os._exit(0)
