"""Write an "everything on" copy of each template into a directory (for checkov).

checkov evaluates each resource's Condition with the parameters' defaults and skips the
resources whose condition is false, so the defaults alone would leave the trail, its
bucket, the remediation policy and the bus policy unscanned. Each copy has the defaults
of cfntools.FULL_PARAMETERS, which turn every condition on; it is written as JSON (the
same template, long-form functions), named <template>-all-on.json.

Usage: python render_variants.py OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cfntools import FULL_PARAMETERS, TEMPLATES, load_template  # noqa: E402


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATES:
        template = load_template(name)
        for key, value in FULL_PARAMETERS[name].items():
            template["Parameters"][key]["Default"] = value
        (out / f"{Path(name).stem}-all-on.json").write_text(json.dumps(template, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
