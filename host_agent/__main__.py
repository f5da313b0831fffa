"""``python -m host_agent`` runs the host, like ``wasmcloud-host``."""

import sys

from host_agent.cli.host import main

sys.exit(main())
