-- pgbench: the spool writer's work without the module: one batch of the
-- lines the module spooled (bench/run.sh keeps a batch's worth in
-- bench_lines, each event id a placeholder), fresh event ids, one
-- crm.record_events() call a transaction, as the spool writer sends them.
SELECT crm.record_events(string_agg(replace(x, '@ID@', gen_random_uuid()::text),
                                    E'\n' ORDER BY n))
  FROM bench_lines;
