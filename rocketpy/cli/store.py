"""`rocketpy store`: look at a store directory without touching it (verify, dump).

Both commands open every file read-only; they are safe on a copy, on a stopped
broker's store, and (with torn-tail reports to be expected) on a running one.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rocketpy.progress import Progress
from rocketpy.protocol import message as m
from rocketpy.store import verify as v

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2
DUMP_LIMIT_DEFAULT = 20

store_app = typer.Typer(
    name="store",
    help="Inspect a store directory read-only: verify its files, dump records, queues and index hits.",
    no_args_is_help=True,
    add_completion=False,
)


@store_app.callback()
def _store() -> None:
    """Inspect a store directory (storePathRootDir) read-only."""


DirArg = Annotated[Path, typer.Argument(
    metavar="DIR",
    help="Store root (storePathRootDir): the directory holding commitlog/, consumequeue/, "
         "index/ and checkpoint.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
IndexSlotsOpt = Annotated[int | None, typer.Option(
    "--index-slots", min=1, help="maxHashSlotNum of the index files; only needed when it cannot be "
    "told from the file size (RocketMQ default 5000000, or entries = 4 x slots).")]
IndexEntriesOpt = Annotated[int | None, typer.Option(
    "--index-entries", min=1, help="maxIndexNum of the index files (RocketMQ default 20000000); "
    "see --index-slots.")]


@store_app.command()
def verify(
    store_dir: DirArg,
    json_out: JsonOpt = False,
    no_crc: Annotated[bool, typer.Option(
        "--no-crc", help="Skip the body CRC check of every record (faster on big stores).")] = False,
    max_per_kind: Annotated[int, typer.Option(
        "--max-per-kind", min=1, help="Print at most this many problems of one kind; the rest are "
        "counted.")] = v.PROBLEMS_PER_KIND_DEFAULT,
    index_slots: IndexSlotsOpt = None,
    index_entries: IndexEntriesOpt = None,
) -> None:
    """Check every CommitLog, ConsumeQueue and IndexFile against the RocketMQ 4.x format.

    Exit status: 0 clean, 1 problems found, 2 the directory cannot be read as a store.
    """
    try:
        with Progress("verify", unit="B") as progress:   # on stderr, and only on a terminal
            result = v.verify_store(store_dir, check_crc=not no_crc, index_slot_count=index_slots,
                                    index_entry_count=index_entries, problems_per_kind=max_per_kind,
                                    progress=progress.report)
    except v.UnreadableStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if json_out:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(result.summary())
        for problem in result.problems:
            typer.echo(f"  PROBLEM {problem}")
        for what, count in sorted(result.suppressed.items()):
            typer.echo(f"  ... and {count} more {what} problem(s) not shown (--max-per-kind)")
        for note in result.notes:
            typer.echo(f"  note: {note}")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_PROBLEMS)


@store_app.command()
def dump(
    store_dir: DirArg,
    commitlog: Annotated[bool, typer.Option(
        "--commitlog", help="Print CommitLog records in log order (the default when nothing else "
        "is asked for).")] = False,
    queue: Annotated[str | None, typer.Option(
        "--queue", metavar="TOPIC:QID", help="Print the ConsumeQueue entries of one queue (queue "
        "offset, phys offset, size, tagsCode) and the record each points at.")] = None,
    index_key: Annotated[str | None, typer.Option(
        "--index", metavar="KEY", help="Print the index hits for a message key (a KEYS word or "
        "UNIQ_KEY); needs --topic.")] = None,
    topic: Annotated[str | None, typer.Option(
        "--topic", metavar="T", help="Topic of the --index key (index keys are TOPIC#KEY).")] = None,
    from_offset: Annotated[int, typer.Option(
        "--from", metavar="OFFSET", min=0, help="Start here: a phys offset for --commitlog (records "
        "starting at or after it), a queue offset for --queue.")] = 0,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", min=1, help="Print at most N records, entries or hits per "
        "section.")] = DUMP_LIMIT_DEFAULT,
    json_out: JsonOpt = False,
    body_bytes: Annotated[int, typer.Option(
        "--body-bytes", min=0, help="Bytes of each body to preview (text if UTF-8, else hex).")] = 64,
    index_slots: IndexSlotsOpt = None,
    index_entries: IndexEntriesOpt = None,
) -> None:
    """Print records, queue entries or index hits, decoded. Read-only.

    Exit status: 0 printed, 2 the directory, queue or index cannot be read.
    """
    if index_key is not None and not topic:
        typer.echo("error: --index KEY needs --topic T (index keys are TOPIC#KEY)", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    queue_sel: tuple[str, int] | None = None
    if queue is not None:
        name, sep, qid = queue.rpartition(":")
        if not sep or not name or not qid.lstrip("-").isdigit():
            typer.echo(f"error: --queue {queue!r} is not TOPIC:QID, e.g. TopicA:0", err=True)
            raise typer.Exit(EXIT_UNREADABLE)
        queue_sel = (name, int(qid))
    if queue_sel is None and index_key is None:
        commitlog = True
    out: dict[str, Any] = {}
    try:
        with v.StoreReader(store_dir) as reader:
            if commitlog:
                out["records"] = _dump_commitlog(reader, from_offset, limit, body_bytes)
            if queue_sel is not None:
                out["queue"] = _dump_queue(reader, queue_sel, from_offset, limit, body_bytes)
            if index_key is not None:
                assert topic is not None
                out["index"] = _dump_index(reader, topic, index_key, limit, body_bytes,
                                           index_slots, index_entries)
    except (v.UnreadableStoreError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None
    if json_out:
        typer.echo(json.dumps(out, indent=2))
        return
    if "records" in out:
        typer.echo(f"# commitlog from phys {from_offset} ({len(out['records'])} items)")
        for item in out["records"]:
            typer.echo(_format_item(item))
    if "queue" in out:
        typer.echo(f"# consumequeue {queue} from queue offset {from_offset} "
                   f"({len(out['queue'])} entries)")
        for item in out["queue"]:
            typer.echo(f"queue_offset={item['queue_offset']} phys={item['phys_offset']} "
                       f"size={item['size']} tagsCode={item['tags_code']}")
            if item.get("record"):
                typer.echo(_format_record(item["record"], indent="    "))
            elif item.get("error"):
                typer.echo(f"    !! {item['error']}")
    if "index" in out:
        typer.echo(f"# index hits for {topic}#{index_key} ({len(out['index'])} hits)")
        for item in out["index"]:
            typer.echo(f"{item['file']} entry={item['entry']} keyHash={item['key_hash']} "
                       f"phys={item['phys_offset']} time={_ts(item['store_time_ms'])}")
            if item.get("record"):
                typer.echo(_format_record(item["record"], indent="    "))
            elif item.get("error"):
                typer.echo(f"    !! {item['error']}")


def _dump_commitlog(reader: v.StoreReader, from_phys: int, limit: int, body_bytes: int
                    ) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for phys, probe in reader.iter_commitlog(from_phys):
        if len(items) >= limit:
            break
        if isinstance(probe, v.ProbeRecord):
            fields = v.record_fields(phys, probe.record, body_preview_bytes=body_bytes)
            fields["kind"] = "record"
            if not probe.crc_ok:
                fields["error"] = v.crc_detail(phys, probe.record)
            items.append(fields)
        elif isinstance(probe, v.ProbeBlank):
            items.append({"kind": "blank", "phys_offset": phys, "size": probe.size})
        elif isinstance(probe, v.ProbeEnd):
            items.append({"kind": "end", "phys_offset": phys})
        else:
            items.append({"kind": "bad", "phys_offset": phys, "what": probe.what,
                          "error": probe.detail})
    return items


def _dump_queue(reader: v.StoreReader, queue_sel: tuple[str, int], from_queue_offset: int,
                limit: int, body_bytes: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for entry in reader.queue_entries(queue_sel[0], queue_sel[1], from_queue_offset):
        if len(items) >= limit:
            break
        item: dict[str, Any] = {"queue_offset": entry.queue_offset, "phys_offset": entry.phys_offset,
                                "size": entry.size, "tags_code": entry.tags_code}
        _attach_record(reader, item, entry.phys_offset, body_bytes)
        items.append(item)
    return items


def _dump_index(reader: v.StoreReader, topic: str, key: str, limit: int, body_bytes: int,
                slots: int | None, entries: int | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for hit in reader.query_index(topic, key, slot_count=slots, entry_count=entries)[:limit]:
        item: dict[str, Any] = {"file": hit.file, "entry": hit.entry, "key_hash": hit.key_hash,
                                "phys_offset": hit.phys_offset, "store_time_ms": hit.store_time_ms}
        _attach_record(reader, item, hit.phys_offset, body_bytes)
        rec = item.get("record")
        if rec is not None:
            keys = rec["properties"].get(m.PROPERTY_KEYS, "").split(" ")
            uniq = rec["properties"].get(m.PROPERTY_UNIQ_KEY)
            # hashes collide: say whether this hit really carries the key
            item["key_matches"] = rec["topic"] == topic and (key in keys or key == uniq)
        items.append(item)
    return items


def _attach_record(reader: v.StoreReader, item: dict[str, Any], phys: int, body_bytes: int) -> None:
    rec = reader.read_record(phys)
    if rec is None:
        item["error"] = f"no valid record starts at phys {phys}"
    else:
        item["record"] = v.record_fields(phys, rec, body_preview_bytes=body_bytes)


def _ts(ms: int) -> str:
    if ms <= 0:
        return str(ms)
    try:
        when = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return f"{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} ({ms})"


def _format_item(item: dict[str, Any]) -> str:
    kind = item["kind"]
    if kind == "record":
        text = _format_record(item)
        return text + (f"\n  !! {item['error']}" if "error" in item else "")
    if kind == "blank":
        return f"phys={item['phys_offset']} BLANK size={item['size']} (end of file)"
    if kind == "end":
        return f"phys={item['phys_offset']} END of the log (zeros)"
    return f"phys={item['phys_offset']} BAD {item['what']}: {item['error']}"


def _format_record(rec: dict[str, Any], indent: str = "") -> str:
    props = " ".join(f"{k}={val}" for k, val in rec["properties"].items()) or "-"
    return (
        f"{indent}phys={rec['phys_offset']} size={rec['size']} topic={rec['topic']} "
        f"queue_id={rec['queue_id']} queue_offset={rec['queue_offset']} "
        f"sysflag=0x{rec['sys_flag']:X} flag={rec['flag']} reconsume={rec['reconsume_times']}\n"
        f"{indent}  born={_ts(rec['born_timestamp'])} host={rec['born_host']}  "
        f"stored={_ts(rec['store_timestamp'])} host={rec['store_host']}"
        + (f"  prepared_tx_offset={rec['prepared_transaction_offset']}"
           if rec["prepared_transaction_offset"] else "") + "\n"
        f"{indent}  properties: {props}\n"
        f"{indent}  body ({rec['body_length']} bytes, {rec['body_preview_kind']}): "
        f"{rec['body_preview']!r}"
    )


def register(app: typer.Typer) -> None:
    """Add `rocketpy store ...` to the root app (called by rocketpy.cli.app)."""
    app.add_typer(store_app, name="store")
