"""The SQL the SQLite state store runs, built from ``_sqlite_codec``'s column lists.

Each read is written to match one index of ``_sqlite_schema`` (see there), so SQLite walks an
index range in the order asked for and stops at the limit, with no sort step: the unit tests
check the plans with ``EXPLAIN QUERY PLAN``.
"""

from __future__ import annotations

from collections.abc import Sequence

from localbatch.adapters import _sqlite_codec as codec
from localbatch.core.jobs import JobStatus
from localbatch.ports import EventLogQuery, JobQuery


def _named(columns: Sequence[str]) -> tuple[str, str]:
    return ", ".join(columns), ", ".join(f":{c}" for c in columns)


def _upsert(table: str, columns: Sequence[str], key: str) -> str:
    names, values = _named(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({key}) DO UPDATE SET {updates}"


# -- jobs, attempts, events ----------------------------------------------------------

JOB_COLS = ", ".join(codec.JOB_COLUMNS)
_STOP_COLUMNS = ("stop_kind", "stop_reason", "stop_requested_at")
_job_names, _job_values = _named(codec.JOB_COLUMNS)
# A save never clears a recorded stop request: a job saved with none keeps the one stored
# (request_stop may have recorded it after the caller read the job). Nor does it change the
# stored tags: after the insert only update_tags does.
_KEPT_ON_UPDATE = ("job_id", "tags", *_STOP_COLUMNS)
UPSERT_JOB = (
    f"INSERT INTO jobs ({_job_names}) VALUES ({_job_values}) ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in codec.JOB_COLUMNS if c not in _KEPT_ON_UPDATE)
    + ", "
    + ", ".join(
        f"{c} = CASE WHEN excluded.stop_kind IS NULL THEN jobs.{c} ELSE excluded.{c} END" for c in _STOP_COLUMNS
    )
)
DELETE_ATTEMPTS = "DELETE FROM attempts WHERE job_id = ?"
ATTEMPT_COLS, _attempt_values = _named(codec.ATTEMPT_COLUMNS)
INSERT_ATTEMPT = f"INSERT INTO attempts ({ATTEMPT_COLS}) VALUES ({_attempt_values})"
INSERT_EVENT = (
    "INSERT INTO events (job_id, at, from_status, to_status, reason, detail) "
    "VALUES (:job_id, :at, :from_status, :to_status, :reason, :detail)"
)
SELECT_EVENTS = "SELECT job_id, at, from_status, to_status, reason, detail FROM events WHERE job_id = ? ORDER BY at, id"
INSERT_LOG = (
    "INSERT INTO event_log (at, kind, job_id, job_queue, status, body) "
    "VALUES (:at, :kind, :job_id, :job_queue, :status, :body)"
)
LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM event_log"
SELECT_RULE_STATES = "SELECT name, state FROM rule_states ORDER BY name"
UPSERT_RULE_STATE = (
    "INSERT INTO rule_states (name, state) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET state = excluded.state"
)


def read_event_log(query: EventLogQuery) -> tuple[str, dict[str, object]]:
    """Entries after ``after_seq`` in ``seq`` order: a walk of the primary key, filtered."""
    where = ["seq > :after"]
    args: dict[str, object] = {"after": query.after_seq, "limit": query.limit}
    if query.job_queue is not None:
        where.append("job_queue = :queue")
        args["queue"] = query.job_queue
    if query.since is not None:
        where.append("at >= :since")
        args["since"] = query.since
    for name, values in (("status", query.statuses), ("kind", query.kinds)):
        if values:
            marks = ", ".join(f":{name}{i}" for i in range(len(values)))
            where.append(f"{name} IN ({marks})")
            args.update({f"{name}{i}": value for i, value in enumerate(values)})
    text = "SELECT seq, at, kind, job_id, job_queue, status, body FROM event_log WHERE "
    return text + " AND ".join(where) + " ORDER BY seq LIMIT :limit", args


SELECT_JOB = f"SELECT {JOB_COLS} FROM jobs WHERE job_id = ?"
# Walks jobs_by_definition (partial: its WHERE repeated word for word); parents never ran.
SELECT_RECENT_JOBS = (
    f"SELECT {JOB_COLS} FROM jobs WHERE job_definition_name = ? AND stopped_at IS NOT NULL "
    "AND NOT (array_size IS NOT NULL AND array_index IS NULL) "
    "AND NOT (num_nodes IS NOT NULL AND node_index IS NULL) "
    "ORDER BY stopped_at DESC, job_id LIMIT ?"
)

# The partial index jobs_active has exactly this WHERE: a query must repeat it word for word
# for SQLite to see that the index holds every row it wants.
_NOT_TERMINAL = "status NOT IN ('SUCCEEDED', 'FAILED')"
SELECT_ACTIVE_JOBS = f"SELECT {JOB_COLS} FROM jobs WHERE {_NOT_TERMINAL} ORDER BY created_at, job_id"
SELECT_ACTIVE_SHARES = (
    f"SELECT DISTINCT share_identifier FROM jobs WHERE {_NOT_TERMINAL} "
    "AND job_queue = ? AND share_identifier IS NOT NULL"
)
# A request is recorded on a job that has none, or replaces a pending CANCEL with a
# TERMINATE (a cancel a started job ignored must not swallow a later terminate).
REQUEST_STOP = (
    "UPDATE jobs SET stop_kind = :kind, stop_reason = :reason, stop_requested_at = :requested_at "
    f"WHERE job_id = :job_id AND {_NOT_TERMINAL} "
    "AND (stop_kind IS NULL OR (stop_kind = 'CANCEL' AND :kind = 'TERMINATE'))"
)
# Clears exactly the request the caller decided on, not one recorded since.
CLEAR_STOP = (
    "UPDATE jobs SET stop_kind = NULL, stop_reason = NULL, stop_requested_at = NULL "
    "WHERE job_id = :job_id AND stop_kind = :kind AND stop_requested_at = :requested_at"
)
COUNT_JOBS = "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"
COUNT_QUEUE_JOBS = "SELECT status, COUNT(*) AS n FROM jobs WHERE job_queue = ? GROUP BY status"
COUNT_ARRAY_JOBS = "SELECT status, COUNT(*) AS n FROM jobs WHERE array_job_id = ? GROUP BY status"

ATTEMPTS_CHUNK = 500  # job ids per IN (...): well under SQLite's limit on parameters


def select_attempts(count: int) -> str:
    """The attempts of ``count`` jobs (ids as parameters), by job then number."""
    marks = ", ".join("?" * count)
    return f"SELECT {ATTEMPT_COLS} FROM attempts WHERE job_id IN ({marks}) ORDER BY job_id, number"


def list_jobs(query: JobQuery) -> tuple[str, dict[str, object]]:
    """``query`` as one SELECT of ``JOB_COLS`` and its named parameters.

    Filters are AND-ed. Several statuses become one arm per status, each an ordered range of
    an index, merged by SQLite (UNION ALL with ORDER BY) rather than gathered and sorted.
    ``after`` is spelled ``created_at <= T AND (created_at < T OR job_id > ID)``: the first
    half bounds the index range, the second skips the rows of the previous page that share
    its last ``created_at``.
    """
    if query.limit < 0:
        raise ValueError(f"JobQuery.limit must be >= 0, got {query.limit}")
    if query.array_job_id is not None:
        return _list_members(query, "array_job_id", query.array_job_id, "array_index")
    if query.multi_node_job_id is not None:
        return _list_members(query, "multinode_job_id", query.multi_node_job_id, "node_index")
    where: list[str] = ["array_job_id IS NULL", "multinode_job_id IS NULL"]
    args: dict[str, object] = {"limit": query.limit}
    if query.consumable_resource is not None:  # a scan: jobs are not indexed by what they need
        where = [
            "multinode_job_id IS NULL",
            "NOT (array_size IS NOT NULL AND array_job_id IS NULL)",
            "EXISTS (SELECT 1 FROM json_each(jobs.consumable_resources) AS need "
            "WHERE json_extract(need.value, '$[0]') = :consumable)",
        ]
        args["consumable"] = query.consumable_resource
    if query.job_queue is not None:
        where.append("job_queue = :queue")
        args["queue"] = query.job_queue
    if query.name_prefix:  # ASCII letters match either case (NOCASE), as in the in-memory store
        where.append("substr(job_name, 1, :prefix_length) = :prefix COLLATE NOCASE")
        args.update(prefix=query.name_prefix, prefix_length=len(query.name_prefix))
    _definition_filter(query, where, args)
    if query.created_after is not None:
        where.append("created_at > :created_after")
        args["created_after"] = query.created_after
    # One upper bound on created_at, the tighter: given two (or three), SQLite's planner may
    # prefer a shorter index that has them all to the one that also has the status.
    before = query.created_before
    if query.after is not None and (before is None or query.after[0] < before):
        where.append("created_at <= :after_at AND (created_at < :after_at OR job_id > :after_id)")
        args.update(after_at=query.after[0], after_id=query.after[1])
        before = None  # every row at or before after_at is before it
    if before is not None:  # and, if after was given, implies it: before <= after_at
        where.append("created_at < :created_before")
        args["created_before"] = before

    statuses = list(dict.fromkeys(query.statuses))  # distinct, in order
    if not statuses or len(statuses) == len(JobStatus):
        arms = [where]
    else:
        arms = [[f"status = :status{n}", *where] for n in range(len(statuses))]
        args.update({f"status{n}": status.value for n, status in enumerate(statuses)})
    selects = [f"SELECT {JOB_COLS} FROM jobs WHERE {' AND '.join(arm)}" for arm in arms]
    return " UNION ALL ".join(selects) + " ORDER BY created_at DESC, job_id LIMIT :limit", args


def _definition_filter(query: JobQuery, where: list[str], args: dict[str, object]) -> None:
    """ListJobs' JOB_DEFINITION filter, case-sensitive (``substr`` compares bytes)."""
    if query.job_definition is None:
        return
    if query.job_definition_prefix:
        where.append("substr(job_definition_name, 1, :definition_length) = :definition")
        args["definition_length"] = len(query.job_definition)
    else:
        where.append("job_definition_name = :definition")
    args["definition"] = query.job_definition
    if query.job_definition_revision is not None:
        where.append("job_definition_revision = :definition_revision")
        args["definition_revision"] = query.job_definition_revision


def _list_members(query: JobQuery, parent_column: str, parent: str, index_column: str) -> tuple[str, dict[str, object]]:
    """An array's children or a multi-node job's nodes, by index, on jobs_by_array or
    jobs_by_multinode; ``after`` is (index, job_id)."""
    where = [f"{parent_column} = :parent"]
    args: dict[str, object] = {"limit": query.limit, "parent": parent}
    statuses = list(dict.fromkeys(query.statuses))
    if statuses and len(statuses) < len(JobStatus):
        where.append(f"status IN ({', '.join(f':status{n}' for n in range(len(statuses)))})")
        args.update({f"status{n}": status.value for n, status in enumerate(statuses)})
    if query.name_prefix:
        where.append("substr(job_name, 1, :prefix_length) = :prefix COLLATE NOCASE")
        args.update(prefix=query.name_prefix, prefix_length=len(query.name_prefix))
    _definition_filter(query, where, args)
    if query.created_after is not None:
        where.append("created_at > :created_after")
        args["created_after"] = query.created_after
    if query.created_before is not None:
        where.append("created_at < :created_before")
        args["created_before"] = query.created_before
    if query.after is not None:
        where.append(f"{index_column} > :after_index")
        args["after_index"] = query.after[0]
    return f"SELECT {JOB_COLS} FROM jobs WHERE {' AND '.join(where)} ORDER BY {index_column} LIMIT :limit", args


# -- job definitions -----------------------------------------------------------------

DEFINITION_COLS = "name, revision, status, document, created_at"
NEXT_REVISION = "SELECT COALESCE(MAX(revision), 0) + 1 FROM job_definitions WHERE name = ?"
INSERT_DEFINITION = f"INSERT INTO job_definitions ({DEFINITION_COLS}) VALUES (?, ?, ?, ?, ?)"
SELECT_DEFINITION = f"SELECT {DEFINITION_COLS} FROM job_definitions WHERE name = ? AND revision = ?"
SELECT_LATEST_DEFINITION = (
    f"SELECT {DEFINITION_COLS} FROM job_definitions WHERE name = ? AND status = ? ORDER BY revision DESC LIMIT 1"
)
SET_DEFINITION_STATUS = "UPDATE job_definitions SET status = ? WHERE name = ? AND revision = ?"


def list_definitions(name: str | None, status: str | None) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    if name is not None:
        where.append("name = ?")
        args.append(name)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    where_sql = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {DEFINITION_COLS} FROM job_definitions{where_sql} ORDER BY name, revision", args


# -- compute environments and job queues ---------------------------------------------

ENVIRONMENT_COLS = ", ".join(codec.ENVIRONMENT_COLUMNS)
UPSERT_ENVIRONMENT = _upsert("compute_environments", codec.ENVIRONMENT_COLUMNS, "name")
SELECT_ENVIRONMENT = f"SELECT {ENVIRONMENT_COLS} FROM compute_environments WHERE name = ?"
SELECT_ENVIRONMENTS = f"SELECT {ENVIRONMENT_COLS} FROM compute_environments ORDER BY name"
DELETE_ENVIRONMENT = "DELETE FROM compute_environments WHERE name = ?"
QUEUE_COLS = ", ".join(codec.QUEUE_COLUMNS)
UPSERT_QUEUE = _upsert("job_queues", codec.QUEUE_COLUMNS, "name")
SELECT_QUEUE = f"SELECT {QUEUE_COLS} FROM job_queues WHERE name = ?"
SELECT_QUEUES = f"SELECT {QUEUE_COLS} FROM job_queues ORDER BY name"
DELETE_QUEUE = "DELETE FROM job_queues WHERE name = ?"
POLICY_COLS = ", ".join(codec.POLICY_COLUMNS)
UPSERT_POLICY = _upsert("scheduling_policies", codec.POLICY_COLUMNS, "name")
SELECT_POLICY = f"SELECT {POLICY_COLS} FROM scheduling_policies WHERE name = ?"
SELECT_POLICIES = f"SELECT {POLICY_COLS} FROM scheduling_policies ORDER BY name"
DELETE_POLICY = "DELETE FROM scheduling_policies WHERE name = ?"
CONSUMABLE_COLS = ", ".join(codec.CONSUMABLE_COLUMNS)
UPSERT_CONSUMABLE = _upsert("consumable_resources", codec.CONSUMABLE_COLUMNS, "name")
SELECT_CONSUMABLE = f"SELECT {CONSUMABLE_COLS} FROM consumable_resources WHERE name = ?"
SELECT_CONSUMABLES = f"SELECT {CONSUMABLE_COLS} FROM consumable_resources ORDER BY name"
DELETE_CONSUMABLE = "DELETE FROM consumable_resources WHERE name = ?"
SET_CONSUMABLE_TOTAL = "UPDATE consumable_resources SET total_quantity = ? WHERE name = ?"
SELECT_STATUS = "SELECT status FROM jobs WHERE job_id = ?"
# A NON_REPLENISHABLE resource's total drops by what an attempt used, never below 0.
USE_UP = """UPDATE consumable_resources SET total_quantity = max(0, total_quantity - ?)
               WHERE name = ? AND resource_type = 'NON_REPLENISHABLE'"""


# -- tags: the tags column (a JSON object) of each taggable table, or the document's "tags" ----

SELECT_TAGS = {
    "job": "SELECT tags FROM jobs WHERE job_id = ?",
    "job-queue": "SELECT tags FROM job_queues WHERE name = ?",
    "compute-environment": "SELECT tags FROM compute_environments WHERE name = ?",
    "scheduling-policy": "SELECT tags FROM scheduling_policies WHERE name = ?",
    "consumable-resource": "SELECT tags FROM consumable_resources WHERE name = ?",
}
UPDATE_TAGS = {
    "job": "UPDATE jobs SET tags = ? WHERE job_id = ?",
    "job-queue": "UPDATE job_queues SET tags = ? WHERE name = ?",
    "compute-environment": "UPDATE compute_environments SET tags = ? WHERE name = ?",
    "scheduling-policy": "UPDATE scheduling_policies SET tags = ? WHERE name = ?",
    "consumable-resource": "UPDATE consumable_resources SET tags = ? WHERE name = ?",
}
SELECT_DEFINITION_DOCUMENT = "SELECT document FROM job_definitions WHERE name = ? AND revision = ?"
UPDATE_DEFINITION_DOCUMENT = "UPDATE job_definitions SET document = ? WHERE name = ? AND revision = ?"
