"""`python -m xrayhpc.submit`: the command; its code is xrayhpc/cluster/submit.py."""

from xrayhpc.cluster.submit import main

if __name__ == "__main__":
    raise SystemExit(main())
