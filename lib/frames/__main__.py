from lib.frames.extract import main

raise SystemExit(main())
