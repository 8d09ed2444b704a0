from cvm_operator.cli import main

raise SystemExit(main())
