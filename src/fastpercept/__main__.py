import sys

try:
    from .apps.cli import run
except KeyboardInterrupt:  # Ctrl-C before the command line's own handler is in place
    print("fastpercept: interrupted", file=sys.stderr)
    sys.exit(130)

run()
