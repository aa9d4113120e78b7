"""`clinic`: the staff and IT command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from tabulate import tabulate

from clinic import audit, consent, crypto, kpi, migrate, model_cache, results, rights, scheduling, staff
from clinic.db import database
from clinic.demo import seed
from clinic.fhir.commands import register as register_integration
from clinic.models import Location, Practitioner, ResultStatus, Specialty
from clinic.settings import settings


class CliError(Exception):
    """A mistake in what was asked; printed as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (the usage stays in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _day(text: str) -> date:
    today = datetime.now(settings().zone).date()
    named = {"today": today, "oggi": today, "tomorrow": today + timedelta(days=1), "domani": today + timedelta(days=1)}
    if text.lower() in named:
        return named[text.lower()]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (use YYYY-MM-DD, today or tomorrow)") from None


def _local(moment: datetime) -> str:
    return moment.astimezone(settings().zone).strftime("%a %d %b %H:%M")


def _practitioner_id(key: str) -> int:
    with database().transaction() as session:
        found = session.scalars(select(Practitioner.id).where(Practitioner.key == key)).first()
        if found is None:
            keys = ", ".join(session.scalars(select(Practitioner.key).order_by(Practitioner.key)))
            raise CliError(f"no practitioner {key!r}; known: {keys}")
        return found


def _check_specialty(key: str) -> str:
    with database().transaction() as session:
        keys = list(session.scalars(select(Specialty.key).order_by(Specialty.key)))
    if key not in keys:
        raise CliError(f"no specialty {key!r}; known: {', '.join(keys)}")
    return key


def _check_location(key: str) -> str:
    with database().transaction() as session:
        keys = list(session.scalars(select(Location.key).order_by(Location.key)))
    if key not in keys:
        raise CliError(f"no location {key!r}; known: {', '.join(keys)}")
    return key


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    migrate.upgrade()
    print("database is at the newest schema")


def cmd_seed(args: argparse.Namespace) -> None:
    result = seed(database(), today=args.today)
    print(
        f"demo clinic ready: {result.locations} locations, {result.practitioners} practitioners, "
        f"{result.patients} patients, {result.slots} slots"
    )
    if args.history_weeks:
        from clinic.demo import history

        made = history.generate(database(), args.history_weeks, today=args.today)
        print(f"demo history: {made.weeks} weeks, {made.appointments} appointments, {made.conversations} "
              f"conversations, {made.tickets} handoffs" if made else "demo history: there is some already")


def cmd_slots(args: argparse.Namespace) -> None:
    if not (args.specialty or args.practitioner):
        raise CliError("name a --specialty or a --practitioner")
    query = scheduling.SlotQuery(
        *scheduling.day_window(args.day, args.day + timedelta(days=args.days - 1)),
        specialty=args.specialty and _check_specialty(args.specialty),
        practitioner_id=args.practitioner and _practitioner_id(args.practitioner),
    )
    slots = scheduling.free_slots(database(), query, limit=args.limit)
    if not slots:
        print("no free slots")
        return
    rows = [(s.id, _local(s.start_at), _local(s.end_at)[-5:], s.practitioner_name, s.location_name) for s in slots]
    print(tabulate(rows, headers=["slot", "start", "end", "practitioner", "location"]))


def cmd_appointment_settle(args: argparse.Namespace) -> None:
    """Staff check a visit off: `complete` (the patient came) or `no-show`."""
    settle = scheduling.complete if args.appointments_command == "complete" else scheduling.mark_no_show
    done = settle(database(), appointment_id=args.id, actor="cli")
    print(f"appointment {done.id} ({_local(done.start_at)}, {done.practitioner_name}) is now {done.status.value}")


def cmd_appointments(args: argparse.Namespace) -> None:
    if args.patient is None and args.day is None:
        raise CliError("name a --day or a --patient")
    first = args.day or datetime.now(settings().zone).date()
    start, end = scheduling.day_window(first, first + timedelta(days=args.days - 1))
    if args.day is None:  # a patient's appointments: everything from today on
        end = datetime.max.replace(tzinfo=start.tzinfo)
    appointments = scheduling.appointments_between(
        database(), start, end, patient_id=args.patient, include_cancelled=args.all
    )
    if not appointments:
        print("no appointments")
        return
    rows = [
        (a.id, _local(a.start_at), a.patient_name, a.practitioner_name, a.location_name, a.status.value)
        for a in appointments
    ]
    print(tabulate(rows, headers=["id", "start", "patient", "practitioner", "location", "status"]))


def cmd_train(args: argparse.Namespace) -> None:
    print(model_cache.ensure_model())


def cmd_env(args: argparse.Namespace) -> None:
    """Every setting as a shell `export`, defaults included: `make run` evals it so that processes
    reading the environment directly (Rasa's `${VAR}` in credentials.yml) see the same values.
    """
    for name, value in settings().dict().items():
        print(f"export {name.upper()}={shlex.quote(str(value).lower() if isinstance(value, bool) else str(value))}")


def _read_password(args: argparse.Namespace) -> str:
    """From stdin (one line, for scripts) or a prompt typed twice; never from the command line."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def cmd_staff_add(args: argparse.Namespace) -> None:
    user = staff.add_user(database(), args.username, _read_password(args), args.role)
    print(f"staff user {user.username} added ({user.role.value})")


def cmd_staff_list(args: argparse.Namespace) -> None:
    users = staff.list_users(database())
    if not users:
        print("no staff users")
        return
    now = datetime.now(settings().zone)
    rows = [
        (u.username, u.role.value, "active" if u.active else "disabled",
         "locked" if u.locked_until and u.locked_until > now else "")
        for u in users
    ]
    print(tabulate(rows, headers=["username", "role", "state", "lockout"]))


def cmd_staff_disable(args: argparse.Namespace) -> None:
    staff.set_active(database(), args.username, False)
    print(f"staff user {args.username} disabled (signed out everywhere)")


def cmd_staff_enable(args: argparse.Namespace) -> None:
    staff.set_active(database(), args.username, True)
    print(f"staff user {args.username} enabled")


def cmd_staff_password(args: argparse.Namespace) -> None:
    staff.set_password(database(), args.username, _read_password(args))
    print(f"password of {args.username} changed (signed out everywhere, lockout cleared)")


def cmd_staff_demo(args: argparse.Namespace) -> None:
    user = staff.ensure_demo_nurse(database())
    print(f"demo nurse ready: {user.username} / {staff.DEMO_PASSWORD}")


def cmd_audit_verify(args: argparse.Namespace) -> None:
    verdict = audit.verify(database())
    if not verdict.ok:
        raise CliError(f"audit trail broken: {verdict.problem}")
    print(verdict)


def cmd_audit_export(args: argparse.Namespace) -> None:
    if args.to < args.from_:
        raise CliError("--to is before --from")
    start, end = scheduling.day_window(args.from_, args.to)
    lines = audit.export(database(), start, end)
    if args.output is None:
        sys.stdout.writelines(lines)
        return
    with open(args.output, "w", encoding="utf-8") as out:
        out.writelines(lines)


def cmd_kpi(args: argparse.Namespace) -> None:
    """The KPIs of a period as a table (or CSV): the same list as the inbox's dashboard (docs/kpi.md)."""
    if args.to < args.from_:
        raise CliError("--to is before --from")
    filters = kpi.Filters(args.from_, args.to, args.location and _check_location(args.location),
                          args.specialty and _check_specialty(args.specialty))
    figures = kpi.report(database(), filters)
    if args.csv:
        sys.stdout.write(kpi.csv_text(figures))
        return
    print(tabulate([(f.label, f.text) for f in figures], headers=["figure", "value"]))


def cmd_outreach_run(args: argparse.Namespace) -> None:
    from clinic.outreach.__main__ import serve  # the worker's imports (HTTP client) only when asked for

    if settings().outreach_metrics_port and not args.once:
        from clinic import metrics

        metrics.serve(settings().outreach_metrics_port, metrics.registry(database))
    serve(args.once)


def cmd_crypto_new_key(args: argparse.Namespace) -> None:
    print(crypto.new_key())


def cmd_crypto_rotate(args: argparse.Namespace) -> None:
    from clinic import rotation

    done = rotation.rotate(database(), settings().media_dir, settings().results_dir)
    print(f"re-encrypted under the newest key: {done.rows} rows, {done.files} files")
    if done.unreadable_files:
        raise CliError(f"{len(done.unreadable_files)} files made by no configured key, left as "
                       f"they are: {', '.join(done.unreadable_files[:10])}")


def _staff_id(username: str) -> int:
    user = staff.by_username(database(), username)
    if user is None:
        raise CliError(f"no staff user {username!r}")
    return user.id


def _whatsapp_client():
    from clinic.whatsapp.client import WhatsAppClient
    from clinic.whatsapp.types import GraphConfig

    return WhatsAppClient(database(), GraphConfig.from_settings(settings()))


def cmd_rights_list(args: argparse.Namespace) -> None:
    requests = rights.open_requests(database())
    if not requests:
        print("no open data requests")
        return
    print(tabulate([(r.id, r.kind, r.status, r.phone, _local(r.requested_at)) for r in requests],
                   headers=["id", "kind", "status", "contact", "requested"]))


def cmd_rights_approve(args: argparse.Namespace) -> None:
    done = rights.approve(database(), _whatsapp_client(), args.id, _staff_id(args.by))
    if done.status == "done":
        print(f"data request {done.id} ({done.kind}) carried out")
    else:
        print(f"data request {done.id} ({done.kind}) approved: content erased; the Rasa history follows when Rasa "
              "answers (the retention pass retries)")


def cmd_rights_reject(args: argparse.Namespace) -> None:
    done = rights.reject(database(), args.id, _staff_id(args.by))
    print(f"data request {done.id} ({done.kind}) rejected")


def cmd_retention_run(args: argparse.Namespace) -> None:
    result = rights.retention_pass(database())
    print(f"retention: {result.inbound} received and {result.outbound} sent messages emptied, {result.media} files "
          f"removed, {result.histories} Rasa histories cleared, {result.erasures_finished} erasures finished")


def cmd_privacy_publish(args: argparse.Namespace) -> None:
    texts = {"it": Path(args.it).read_text(encoding="utf-8"), "en": Path(args.en).read_text(encoding="utf-8")}
    consent.publish(database(), args.version, texts)
    print(f"privacy notice {args.version} published: every contact is asked for consent again")


def cmd_privacy_show(args: argparse.Namespace) -> None:
    notice = consent.current_notice(database(), args.language)
    print(f"version {notice.version} ({notice.language})\n\n{notice.text}")


def cmd_results_add(args: argparse.Namespace) -> None:
    pdf = Path(args.file).read_bytes()
    view, new = results.register(database(), args.patient, args.title, pdf, kind=args.kind, delivery=args.delivery,
                                 source="cli", external_id=args.external_id, actor="cli")
    if new:
        print(f"result {view.id} registered for patient {view.patient_id} ({view.delivery.value}): "
              "the patient is told by the outreach worker")
    else:
        print(f"result {view.id} was already registered as {args.external_id!r}: nothing changed")


def cmd_results_list(args: argparse.Namespace) -> None:
    status = ResultStatus(args.status) if args.status else None
    found = results.listing(database(), patient_id=args.patient, status=status)
    if not found:
        print("no results")
        return
    rows = [(r.id, r.patient_id, r.title, r.kind, r.delivery.value, r.status.value, _local(r.created_at),
             _local(r.delivered_at) if r.delivered_at else "") for r in found]
    print(tabulate(rows, headers=["id", "patient", "title", "kind", "delivery", "status", "registered", "delivered"]))


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(prog="clinic", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION", parser_class=OneLineParser)
    db_commands.add_parser("upgrade", help="migrate to the newest schema").set_defaults(run=cmd_db_upgrade)

    seed_cmd = commands.add_parser("seed", help="load the demo clinic (idempotent) and generate slots")
    seed_cmd.add_argument("--today", type=_day, help="first day of generated slots (default: today)")
    seed_cmd.add_argument("--history-weeks", type=int, default=0,
                          help="also that many past weeks of synthetic history, for the KPI dashboard (once)")
    seed_cmd.set_defaults(run=cmd_seed)

    slots = commands.add_parser("slots", help="free slots for a specialty or practitioner")
    slots.add_argument("--specialty", help="specialty key, e.g. cardiology")
    slots.add_argument("--practitioner", help="practitioner key, e.g. bianchi")
    slots.add_argument("--day", type=_day, default="today", help="YYYY-MM-DD, today or tomorrow")
    slots.add_argument("--days", type=int, default=1, help="how many days from --day")
    slots.add_argument("--limit", type=int, default=50)
    slots.set_defaults(run=cmd_slots)

    appointments = commands.add_parser("appointments", help="appointments on a day or of a patient")
    appointments.add_argument("--day", type=_day, help="YYYY-MM-DD, today or tomorrow")
    appointments.add_argument("--days", type=int, default=1, help="how many days from --day")
    appointments.add_argument("--patient", type=int, help="patient id: their appointments from today on")
    appointments.add_argument("--all", action="store_true", help="include cancelled appointments")
    appointments.set_defaults(run=cmd_appointments)
    settle_commands = appointments.add_subparsers(dest="appointments_command", metavar="ACTION",
                                                  parser_class=OneLineParser)
    for name, what in (("complete", "the patient came: mark the visit completed (follow-up and survey follow)"),
                       ("no-show", "the patient did not come: mark the visit no_show (an offer to rebook follows)")):
        settle = settle_commands.add_parser(name, help=what)
        settle.add_argument("id", type=int, help="appointment id (see `clinic appointments --day today`)")
        settle.set_defaults(run=cmd_appointment_settle)

    staff_cmd = commands.add_parser("staff", help="nurse inbox accounts")
    staff_commands = staff_cmd.add_subparsers(
        dest="staff_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    add = staff_commands.add_parser("add", help="add a nurse or admin (password prompted)")
    add.add_argument("--username", required=True)
    add.add_argument("--role", choices=["nurse", "admin"], default="nurse")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    add.set_defaults(run=cmd_staff_add)
    staff_commands.add_parser("list", help="every account and its state").set_defaults(run=cmd_staff_list)
    for name, run, what in (("disable", cmd_staff_disable, "disable an account and end its sessions"),
                            ("enable", cmd_staff_enable, "enable an account again")):
        one = staff_commands.add_parser(name, help=what)
        one.add_argument("--username", required=True)
        one.set_defaults(run=run)
    password = staff_commands.add_parser("password", help="set a new password (prompted)")
    password.add_argument("--username", required=True)
    password.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    password.set_defaults(run=cmd_staff_password)
    staff_commands.add_parser("demo", help="create the demo nurse (DEMO_MODE=true only)").set_defaults(
        run=cmd_staff_demo
    )

    audit_cmd = commands.add_parser("audit", help="the audit trail: check it, export it for an auditor")
    audit_commands = audit_cmd.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    audit_commands.add_parser(
        "verify", help="check the hash chain: 'ok, N entries' or the first entry altered, missing, inserted or moved"
    ).set_defaults(run=cmd_audit_verify)
    export = audit_commands.add_parser("export", help="entries of some clinic days as JSON Lines")
    export.add_argument("--from", dest="from_", type=_day, required=True, help="first day, YYYY-MM-DD")
    export.add_argument("--to", type=_day, required=True, help="last day (included), YYYY-MM-DD")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.set_defaults(run=cmd_audit_export)

    crypto_cmd = commands.add_parser("crypto", help="encryption keys for message bodies, media and result files")
    crypto_commands = crypto_cmd.add_subparsers(
        dest="crypto_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    crypto_commands.add_parser("new-key", help="print a new key, to put first in ENCRYPTION_KEYS").set_defaults(
        run=cmd_crypto_new_key
    )
    crypto_commands.add_parser(
        "rotate", help="re-encrypt stored message bodies and media under the first key (then drop the old ones)"
    ).set_defaults(run=cmd_crypto_rotate)

    privacy = commands.add_parser("privacy", help="the privacy notice patients consent to")
    privacy_commands = privacy.add_subparsers(
        dest="privacy_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    publish = privacy_commands.add_parser("publish", help="publish a new notice version (everyone is asked again)")
    publish.add_argument("--version", required=True, help="a new version name, e.g. 2026-12")
    publish.add_argument("--it", required=True, help="file with the Italian text")
    publish.add_argument("--en", required=True, help="file with the English text")
    publish.set_defaults(run=cmd_privacy_publish)
    show = privacy_commands.add_parser("show", help="the current notice")
    show.add_argument("--language", choices=consent.LANGUAGES, default="it")
    show.set_defaults(run=cmd_privacy_show)

    kpi_cmd = commands.add_parser("kpi", help="the clinic's KPIs for a period (formulas: docs/kpi.md)")
    kpi_cmd.add_argument("--from", dest="from_", type=_day, required=True, help="first day, YYYY-MM-DD")
    kpi_cmd.add_argument("--to", type=_day, required=True, help="last day (included), YYYY-MM-DD")
    kpi_cmd.add_argument("--location", help="location key: narrows the appointment figures")
    kpi_cmd.add_argument("--specialty", help="specialty key: narrows the appointment figures")
    kpi_cmd.add_argument("--csv", action="store_true", help="CSV instead of a table")
    kpi_cmd.set_defaults(run=cmd_kpi)

    outreach = commands.add_parser("outreach", help="the outreach worker: reminders and other messages it starts")
    outreach_commands = outreach.add_subparsers(dest="outreach_command", required=True, metavar="COMMAND")
    outreach_run = outreach_commands.add_parser(
        "run", help="settle what is due every OUTREACH_INTERVAL_SECONDS until SIGTERM")
    outreach_run.add_argument("--once", action="store_true", help="one pass, deliver what may go now, exit (for cron)")
    outreach_run.set_defaults(run=cmd_outreach_run)

    register_integration(commands, OneLineParser)  # fhir, hooks, ical, import

    rights_cmd = commands.add_parser("rights", help="patients' requests for a copy of their data or erasure")
    rights_commands = rights_cmd.add_subparsers(dest="rights_command", required=True, metavar="ACTION",
                                                parser_class=OneLineParser)
    rights_commands.add_parser("list", help="open requests, oldest first").set_defaults(run=cmd_rights_list)
    for name, what, run in (("approve", "carry a request out (export sent, or content erased)", cmd_rights_approve),
                            ("reject", "decline a request (nothing is changed)", cmd_rights_reject)):
        decide = rights_commands.add_parser(name, help=what)
        decide.add_argument("id", type=int, help="the request's id (see `clinic rights list`)")
        decide.add_argument("--by", required=True, metavar="USERNAME", help="the staff member deciding")
        decide.set_defaults(run=run)
    retention = commands.add_parser("retention", help="remove message content older than MESSAGE_RETENTION_DAYS")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION",
                                                  parser_class=OneLineParser)
    retention_commands.add_parser("run", help="one pass (the outreach worker also runs it daily)").set_defaults(
        run=cmd_retention_run)

    results_cmd = commands.add_parser("results", help="lab results: register a PDF, list them")
    results_commands = results_cmd.add_subparsers(
        dest="results_command", required=True, metavar="ACTION", parser_class=OneLineParser
    )
    add_result = results_commands.add_parser("add", help="register a report (stored encrypted; the patient is told)")
    add_result.add_argument("--patient", type=int, required=True, help="patient id")
    add_result.add_argument("--file", required=True, help="the report, a PDF")
    add_result.add_argument("--title", required=True, help="what the patient reads, e.g. 'Esami del sangue'")
    add_result.add_argument("--kind", default="", help="a key for staff, e.g. blood_tests")
    add_result.add_argument("--delivery", choices=("document", "link"), help="default: RESULTS_DELIVERY")
    add_result.add_argument("--external-id", help="the lab's own id: registering it again changes nothing")
    add_result.set_defaults(run=cmd_results_add)
    list_results = results_commands.add_parser("list", help="results, newest first")
    list_results.add_argument("--patient", type=int, help="one patient's")
    list_results.add_argument("--status", choices=[s.value for s in ResultStatus])
    list_results.set_defaults(run=cmd_results_list)

    train = commands.add_parser("train", help="train the Rasa model unless one for this data exists")
    train.set_defaults(run=cmd_train)
    commands.add_parser("env", help="every setting as a shell export (for `eval`)").set_defaults(run=cmd_env)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (CliError, scheduling.SchedulingError, model_cache.TrainingFailed, staff.StaffError,
            consent.ConsentError, rights.RightsError, results.ResultError, OSError, ValueError) as error:
        print(f"clinic: error: {error}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        detail = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(f"clinic: database error: {type(error).__name__}: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
