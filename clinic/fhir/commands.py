"""The integration's staff commands, registered on the `clinic` command line by `register()`:

- `clinic fhir add-client --name ehr` (prints the API key once), `revoke-client --name ehr`, `clients`;
- `clinic hooks list` (latest deliveries: status, attempts, last answer), `failures`, `retry ID`;
- `clinic ical add --practitioner KEY | --location KEY` (prints the feed URL once), `revoke ID`, `list`;
- `clinic import practitioners|hours|closures FILE.csv`, `clinic import bundle FILE.json` (FHIR).
"""

from __future__ import annotations

import argparse
from datetime import datetime

from tabulate import tabulate

from clinic import hooks, ical
from clinic.db import database
from clinic.fhir import clients, importer
from clinic.settings import settings

ERRORS = (clients.ClientError, ical.FeedError, hooks.UnknownDelivery, importer.ImportProblem)


def _local(moment: datetime | None) -> str:
    return moment.astimezone(settings().zone).strftime("%d %b %H:%M") if moment else ""


def _guarded(run):
    """Our refusals become the CLI's one-line errors."""
    def guarded(args: argparse.Namespace) -> None:
        try:
            run(args)
        except ERRORS as error:
            from clinic.cli import CliError  # the CLI imports this module: import it when running

            raise CliError(str(error)) from None
    return guarded


def cmd_add_client(args: argparse.Namespace) -> None:
    key = clients.add_client(database(), args.name)
    print(f"API client {args.name} added; its key (shown once, send as 'Authorization: Bearer <key>'):\n{key}")


def cmd_revoke_client(args: argparse.Namespace) -> None:
    clients.revoke_client(database(), args.name)
    print(f"API client {args.name} revoked")


def cmd_clients(args: argparse.Namespace) -> None:
    rows = [(c.name, "active" if c.active else "revoked", _local(c.created_at), _local(c.last_used_at))
            for c in clients.list_clients(database())]
    print(tabulate(rows, headers=["name", "state", "created", "last used"]) if rows else "no API clients")


def _deliveries(failed_only: bool, limit: int) -> None:
    rows = [(d.id, d.event, d.event_id[:8], d.url, d.status.value, d.attempts,
             d.last_http_status or "", d.last_error or "", _local(d.last_attempt_at),
             _local(d.next_attempt_at) if d.status is hooks.HookStatus.pending else "")
            for d in hooks.deliveries(database(), failed_only=failed_only, limit=limit)]
    if not rows:
        print("no failed webhook deliveries" if failed_only else "no webhook deliveries")
        return
    print(tabulate(rows, headers=["id", "event", "event id", "url", "status", "attempts", "http", "error",
                                  "last attempt", "next attempt"]))


def cmd_hooks_list(args: argparse.Namespace) -> None:
    _deliveries(False, args.limit)


def cmd_hooks_failures(args: argparse.Namespace) -> None:
    _deliveries(True, args.limit)


def cmd_hooks_retry(args: argparse.Namespace) -> None:
    hooks.retry(database(), args.id)
    print(f"webhook delivery {args.id} queued again")


def cmd_ical_add(args: argparse.Namespace) -> None:
    feed_id, token = ical.create_feed(database(), practitioner=args.practitioner, location=args.location)
    print(f"calendar feed {feed_id} (revoke: clinic ical revoke {feed_id}); its private URL, shown once:\n"
          f"{ical.feed_url(token)}")


def cmd_ical_revoke(args: argparse.Namespace) -> None:
    ical.revoke_feed(database(), args.id)
    print(f"calendar feed {args.id} revoked")


def cmd_ical_list(args: argparse.Namespace) -> None:
    rows = [(f.id, f.owner, _local(f.created_at), _local(f.revoked_at) or "active")
            for f in ical.list_feeds(database())]
    print(tabulate(rows, headers=["id", "for", "created", "revoked"]) if rows else "no calendar feeds")


def cmd_import(args: argparse.Namespace) -> None:
    result = importer.load(database(), args.what, args.file)
    print(result)


def register(commands, parser_class) -> None:
    """Add `fhir`, `hooks`, `ical` and `import` to the `clinic` command's subparsers."""
    def group(name: str, help_text: str):
        sub = commands.add_parser(name, help=help_text)
        return sub.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION", parser_class=parser_class)

    fhir = group("fhir", "API clients of the FHIR API (an EHR, a lab)")
    add = fhir.add_parser("add-client", help="a new client; prints its API key once")
    add.add_argument("--name", required=True)
    add.set_defaults(run=_guarded(cmd_add_client))
    revoke = fhir.add_parser("revoke-client", help="the client's key stops working")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(run=_guarded(cmd_revoke_client))
    fhir.add_parser("clients", help="every client and when it was last used").set_defaults(run=_guarded(cmd_clients))

    hook = group("hooks", "outgoing booking events (webhooks): what was delivered, what failed")
    for name, run, what in (("list", cmd_hooks_list, "the latest deliveries"),
                            ("failures", cmd_hooks_failures, "deliveries given up after every retry")):
        one = hook.add_parser(name, help=what)
        one.add_argument("--limit", type=int, default=50)
        one.set_defaults(run=_guarded(run))
    again = hook.add_parser("retry", help="queue a failed delivery again (same idempotency key)")
    again.add_argument("id", type=int)
    again.set_defaults(run=_guarded(cmd_hooks_retry))

    feeds = group("ical", "private calendar feeds of a practitioner's or a location's appointments")
    new = feeds.add_parser("add", help="a new feed; prints its private URL once")
    owner = new.add_mutually_exclusive_group(required=True)
    owner.add_argument("--practitioner", help="practitioner key")
    owner.add_argument("--location", help="location key")
    new.set_defaults(run=_guarded(cmd_ical_add))
    gone = feeds.add_parser("revoke", help="the feed's URL stops working")
    gone.add_argument("id", type=int)
    gone.set_defaults(run=_guarded(cmd_ical_revoke))
    feeds.add_parser("list", help="every feed").set_defaults(run=_guarded(cmd_ical_list))

    load = commands.add_parser("import", help="load practitioners, working hours and closures (CSV or FHIR bundle)")
    load.add_argument("what", choices=importer.KINDS, help="what the file holds")
    load.add_argument("file", help="CSV file (bundle: a FHIR Bundle JSON file)")
    load.set_defaults(run=_guarded(cmd_import))
