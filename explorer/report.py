"""``python -m explorer.report``: the headless report CLI (`explorer.share.report`)."""

from explorer.share.report import main

if __name__ == "__main__":
    raise SystemExit(main())
