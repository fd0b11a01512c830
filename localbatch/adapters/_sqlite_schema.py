"""The SQLite state store's schema: ordered migration steps, applied by ``SqliteStateStore``.

``PRAGMA user_version`` is the number of steps applied. Step N brings a database from
version N-1 to N inside one write transaction, so a database is at one version or the
next, never in between; a database newer than this code is refused, never downgraded.
Steps are appended, never edited: a shipped step is what every existing file went through.

Version 10 (after all ten steps)::

    job_definitions(name, revision, status ACTIVE|INACTIVE, document JSON, created_at)
        PK (name, revision): list_job_definitions reads it in order. Revisions count 1, 2,
        3 ... per name; rows are never deleted (deregistering flips ``status``), so a
        revision is never reused.
    jobs(job_id PK, job_name, job_queue, status, created_at, started_at, stopped_at,
         job_definition_name, job_definition_revision, status_reason, compute_environment,
         timeout_s, scheduling_priority, propagate_tags, is_cancelled, is_terminated,
         container JSON, parameters JSON, retry_strategy JSON, gpu_ids JSON, tags JSON,
         platform_capabilities JSON,
         runnable_at,                                       (step 2)
         stop_kind CANCEL|TERMINATE, stop_reason, stop_requested_at,   (step 2; all three
                                                            NULL, or none of them)
         array_job_id, array_size, array_index,            (step 3) an array child has all
                                                            three; its parent array_size only
         depends_on JSON, share_identifier,                 (step 3)
         multinode_job_id, num_nodes, main_node, node_index, (step 6) a multi-node node has
                                                            all four; its parent num_nodes
                                                            and main_node
         node_ranges JSON,                                  (step 6) the parent's resolved
                                                            nodeRangeProperties
         submitted_by,                                      (step 7) the key's name or the
                                                            daemon's OS user; NULL before
         consumable_resources JSON [[name, quantity], ...]) (step 8)
        indexes, each matching one shape of query with no sort step:
          jobs_by_created      (created_at DESC, job_id)             list_jobs, no filter
          jobs_by_status       (status, created_at DESC, job_id)     one status; count_jobs()
          jobs_by_queue        (job_queue, created_at DESC, job_id)  one queue
          jobs_by_queue_status (job_queue, status, created_at DESC, job_id)   (step 2)
                                                  queue and status; count_jobs(queue)
          jobs_by_array        (array_job_id, array_index) WHERE array_job_id IS NOT NULL
                                                  (step 3, partial) ListJobs(arrayJobId)
          jobs_by_multinode    (multinode_job_id, node_index) WHERE multinode_job_id IS NOT
                                                  NULL (step 6, partial) ListJobs(multiNodeJobId)
          jobs_by_definition   (job_definition_name, stopped_at DESC, job_id) WHERE
                                                  stopped_at IS NOT NULL (step 9, partial)
                                                  recent_jobs: a definition's ended jobs
          jobs_active          (created_at, job_id) WHERE status NOT IN ('SUCCEEDED', 'FAILED')
                                                  (step 2, partial) active_jobs: only the
                                                  jobs still in flight are in it
        Several statuses are one index range each, merged in order (UNION ALL); name prefix
        and created_at bounds filter the range being walked.
    attempts(job_id -> jobs, number >= 1, task_id, container_name, log_stream_name,
             container_id, started_at, stopped_at, exit_code, reason, status_reason,
             usage JSON: NULL unsampled, else core.usage's document)            (step 9)
        PK (job_id, number)
    events(id AUTOINCREMENT, job_id -> jobs, at, from_status, to_status, reason)
        append-only (triggers refuse UPDATE and DELETE); index (job_id, at, id)
    compute_environments(name PK, state ENABLED|DISABLED, max_vcpus REAL, max_memory_mib,
                         gpu_ids JSON, tags JSON,                              (step 2)
                         spot JSON: NULL on-demand, else the Spot rehearsal)   (step 5)
    job_queues(name PK, priority, state ENABLED|DISABLED, compute_environments JSON, in
               order, tags JSON,                                               (step 2)
               scheduling_policy,     (step 4) a policy's name: a fair-share queue; NULL: FIFO
               job_state_time_limit_actions JSON list)                         (step 5)
    scheduling_policies(name PK, share_decay_seconds, compute_reservation,
                        share_distribution JSON [[identifier, weight], ...], tags JSON)
                                                                               (step 4)
    consumable_resources(name PK, total_quantity >= 0, resource_type REPLENISHABLE |
                         NON_REPLENISHABLE, created_at, tags JSON)             (step 8)
        A NON_REPLENISHABLE total drops in the transaction that saves a job leaving STARTING
        or RUNNING (``SqliteStateStore.save_jobs``).
    event_log(seq AUTOINCREMENT, at, kind, job_id, job_queue, status, body JSON)   (step 10)
        The event stream (``localbatch events``), read by ``seq``. Kind "job": a state change
        written by save_jobs with the change, ``body`` the job as saved ({"job": row,
        "attempts": [rows], "from", "to", "reason", "detail"}); other kinds are the daemon's
        notes (a failed delivery), ``body`` what they say. Appended, never updated.
    rule_states(name PK, state JSON)                                           (step 10)
        What each schedule and trigger remembers (last run, cursor): the daemon's to read.
        No foreign keys between queues, environments, policies and jobs: which references are
        allowed (deleting an environment a queue still names, say) is the service's rule.

Times are epoch milliseconds; booleans are 0/1; JSON columns are written and read by
``_sqlite_codec``. Step 2 also fills ``runnable_at`` of version-1 jobs from their last
RUNNABLE event (what ``core.jobs.transition`` would have set).
"""

from __future__ import annotations

# Spelled out, not computed from JobStatus: a migration step must never change once shipped.
_STATUSES = "'SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED'"

# Ordered migration steps: step N brings user_version from N-1 to N. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE job_definitions (
            name        TEXT    NOT NULL,
            revision    INTEGER NOT NULL CHECK (revision >= 1),
            status      TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE')),
            document    TEXT    NOT NULL,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (name, revision)
        )""",
        f"""CREATE TABLE jobs (
            job_id                  TEXT    PRIMARY KEY,
            job_name                TEXT    NOT NULL,
            job_queue               TEXT    NOT NULL,
            status                  TEXT    NOT NULL CHECK (status IN ({_STATUSES})),
            created_at              INTEGER NOT NULL,
            started_at              INTEGER,
            stopped_at              INTEGER,
            job_definition_name     TEXT    NOT NULL,
            job_definition_revision INTEGER NOT NULL,
            status_reason           TEXT,
            compute_environment     TEXT,
            timeout_s               INTEGER,
            scheduling_priority     INTEGER,
            propagate_tags          INTEGER NOT NULL CHECK (propagate_tags IN (0, 1)),
            is_cancelled            INTEGER NOT NULL CHECK (is_cancelled IN (0, 1)),
            is_terminated           INTEGER NOT NULL CHECK (is_terminated IN (0, 1)),
            container               TEXT    NOT NULL,
            parameters              TEXT    NOT NULL,
            retry_strategy          TEXT    NOT NULL,
            gpu_ids                 TEXT    NOT NULL,
            tags                    TEXT    NOT NULL,
            platform_capabilities   TEXT    NOT NULL
        )""",
        "CREATE INDEX jobs_by_created ON jobs (created_at DESC, job_id)",
        "CREATE INDEX jobs_by_status ON jobs (status, created_at DESC, job_id)",
        "CREATE INDEX jobs_by_queue ON jobs (job_queue, created_at DESC, job_id)",
        """CREATE TABLE attempts (
            job_id          TEXT    NOT NULL REFERENCES jobs (job_id),
            number          INTEGER NOT NULL CHECK (number >= 1),
            task_id         TEXT    NOT NULL,
            container_name  TEXT    NOT NULL,
            log_stream_name TEXT    NOT NULL,
            container_id    TEXT,
            started_at      INTEGER,
            stopped_at      INTEGER,
            exit_code       INTEGER,
            reason          TEXT,
            status_reason   TEXT,
            PRIMARY KEY (job_id, number)
        )""",
        f"""CREATE TABLE events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id      TEXT    NOT NULL REFERENCES jobs (job_id),
            at          INTEGER NOT NULL,
            from_status TEXT    CHECK (from_status IS NULL OR from_status IN ({_STATUSES})),
            to_status   TEXT    NOT NULL CHECK (to_status IN ({_STATUSES})),
            reason      TEXT
        )""",
        "CREATE INDEX events_by_job ON events (job_id, at, id)",
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
    ),
    (
        "ALTER TABLE events ADD COLUMN detail TEXT",
        "ALTER TABLE jobs ADD COLUMN runnable_at INTEGER",
        """ALTER TABLE jobs ADD COLUMN stop_kind TEXT
           CHECK (stop_kind IS NULL OR stop_kind IN ('CANCEL', 'TERMINATE'))""",
        "ALTER TABLE jobs ADD COLUMN stop_reason TEXT",
        """ALTER TABLE jobs ADD COLUMN stop_requested_at INTEGER
           CHECK ((stop_kind IS NULL) = (stop_reason IS NULL)
                  AND (stop_kind IS NULL) = (stop_requested_at IS NULL))""",
        """UPDATE jobs SET runnable_at = (
               SELECT at FROM events
               WHERE events.job_id = jobs.job_id AND events.to_status = 'RUNNABLE'
               ORDER BY at DESC, id DESC LIMIT 1
           )""",
        "CREATE INDEX jobs_by_queue_status ON jobs (job_queue, status, created_at DESC, job_id)",
        """CREATE INDEX jobs_active ON jobs (created_at, job_id)
           WHERE status NOT IN ('SUCCEEDED', 'FAILED')""",
        """CREATE TABLE compute_environments (
            name            TEXT    PRIMARY KEY,
            state           TEXT    NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
            max_vcpus       REAL    NOT NULL,
            max_memory_mib  INTEGER NOT NULL,
            gpu_ids         TEXT    NOT NULL,
            tags            TEXT    NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE job_queues (
            name                 TEXT    PRIMARY KEY,
            priority             INTEGER NOT NULL,
            state                TEXT    NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
            compute_environments TEXT    NOT NULL,
            tags                 TEXT    NOT NULL DEFAULT '{}'
        )""",
    ),
    (
        "ALTER TABLE jobs ADD COLUMN array_job_id TEXT",
        "ALTER TABLE jobs ADD COLUMN array_size INTEGER CHECK (array_size IS NULL OR array_size >= 1)",
        "ALTER TABLE jobs ADD COLUMN array_index INTEGER CHECK (array_index IS NULL OR array_index >= 0)",
        "ALTER TABLE jobs ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE jobs ADD COLUMN share_identifier TEXT",
        "CREATE INDEX jobs_by_array ON jobs (array_job_id, array_index) WHERE array_job_id IS NOT NULL",
    ),
    (
        """CREATE TABLE scheduling_policies (
            name                TEXT    PRIMARY KEY,
            share_decay_seconds INTEGER NOT NULL,
            compute_reservation INTEGER NOT NULL,
            share_distribution  TEXT    NOT NULL,
            tags                TEXT    NOT NULL DEFAULT '{}'
        )""",
        "ALTER TABLE job_queues ADD COLUMN scheduling_policy TEXT",
    ),
    (
        "ALTER TABLE job_queues ADD COLUMN job_state_time_limit_actions TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE compute_environments ADD COLUMN spot TEXT",
    ),
    (
        "ALTER TABLE jobs ADD COLUMN multinode_job_id TEXT",
        "ALTER TABLE jobs ADD COLUMN num_nodes INTEGER CHECK (num_nodes IS NULL OR num_nodes >= 1)",
        "ALTER TABLE jobs ADD COLUMN main_node INTEGER CHECK (main_node IS NULL OR main_node >= 0)",
        "ALTER TABLE jobs ADD COLUMN node_index INTEGER CHECK (node_index IS NULL OR node_index >= 0)",
        "ALTER TABLE jobs ADD COLUMN node_ranges TEXT NOT NULL DEFAULT '[]'",
        """CREATE INDEX jobs_by_multinode ON jobs (multinode_job_id, node_index)
           WHERE multinode_job_id IS NOT NULL""",
    ),
    ("ALTER TABLE jobs ADD COLUMN submitted_by TEXT",),
    (
        "ALTER TABLE jobs ADD COLUMN consumable_resources TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE consumable_resources (
            name           TEXT    PRIMARY KEY,
            total_quantity INTEGER NOT NULL CHECK (total_quantity >= 0),
            resource_type  TEXT    NOT NULL CHECK (resource_type IN ('REPLENISHABLE', 'NON_REPLENISHABLE')),
            created_at     INTEGER NOT NULL,
            tags           TEXT    NOT NULL DEFAULT '{}'
        )""",
    ),
    (
        "ALTER TABLE attempts ADD COLUMN usage TEXT",
        """CREATE INDEX jobs_by_definition ON jobs (job_definition_name, stopped_at DESC, job_id)
           WHERE stopped_at IS NOT NULL""",
    ),
    (
        """CREATE TABLE event_log (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            at          INTEGER NOT NULL,
            kind        TEXT    NOT NULL,
            job_id      TEXT,
            job_queue   TEXT,
            status      TEXT,
            body        TEXT    NOT NULL
        )""",
        """CREATE TRIGGER event_log_no_update BEFORE UPDATE ON event_log
           BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
        """CREATE TABLE rule_states (
            name        TEXT    PRIMARY KEY,
            state       TEXT    NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
