from geomag.cli import entry

entry()
