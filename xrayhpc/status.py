"""`python -m xrayhpc.status`: the command; its code is xrayhpc/cluster/status.py."""

from xrayhpc.cluster.status import main

if __name__ == "__main__":
    raise SystemExit(main())
