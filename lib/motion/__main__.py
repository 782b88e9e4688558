from lib.motion.maps import main

raise SystemExit(main())
