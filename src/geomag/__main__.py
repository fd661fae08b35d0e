from geomag.cli import main

raise SystemExit(main())
