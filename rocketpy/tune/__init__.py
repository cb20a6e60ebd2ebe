"""Host tuning: RocketMQ's sysctl and ulimit advice, made safe, plus the systemd units.

- `settings`: the table of settings, each with its recommended value or rule and reason
- `host`: reads /proc, /sys and the process limits under an injectable root
- `checks`: compares the host with the table (ok / off / unknown)
- `install`: renders the files, plans the changes and applies them under a root
- `units`: the systemd units and the sysusers.d entry

Nothing here imports the rest of rocketpy; `rocketpy.cli.tune` is the command.
"""

from rocketpy.tune.checks import CheckReport, CheckResult, Status, check
from rocketpy.tune.host import Host
from rocketpy.tune.install import ApplyReport, Plan, apply, plan

__all__ = ["ApplyReport", "CheckReport", "CheckResult", "Host", "Plan", "Status", "apply",
           "check", "plan"]
