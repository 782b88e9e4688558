from lib.ensemble.run import main

raise SystemExit(main())
