"""``python -m kvs_client``: the ``kvs`` command line."""

from .cli import main

raise SystemExit(main())
