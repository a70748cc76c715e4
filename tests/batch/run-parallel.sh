#!/bin/sh
# run-parallel.sh - run an attnsec batch campaign under GNU parallel, on
# this host or on several (--sshloginfile), and merge it when complete.
#
#   attnsec batch plan manifest.json -o DIR
#   sh run-parallel.sh DIR [JOBS] [SSHLOGINFILE]
#
# The job log DIR/parallel.joblog makes the script resumable: run it again
# after an interruption and --resume-failed starts the tasks that failed or
# never ran (tasks that already have a valid result return at once; every
# task is idempotent).  Only exit status 75 means "retry later"; 65, 77 and
# 78 will fail again, so read DIR/work/ID/stderr.txt before re-running.
# Set ATTNSEC to use another binary; OPENBLAS_NUM_THREADS=1 keeps one core
# per task.
set -u
dir=${1:?usage: run-parallel.sh DIR [JOBS] [SSHLOGINFILE]}
jobs=${2:-0}                    # 0: one job per CPU core
logins=${3:-}
attnsec=${ATTNSEC:-attnsec}
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS

if [ "$jobs" = 0 ]; then jobs=100%; fi
set -- --joblog "$dir/parallel.joblog" --resume-failed --jobs "$jobs" --halt never
if [ -n "$logins" ]; then
    # remote hosts must see DIR at the same path (shared file system)
    set -- "$@" --sshloginfile "$logins"
fi
# Every index in the same order each time, so that the job numbers in the
# job log stay valid across resumes.
"$attnsec" batch status --list=all "$dir" |
    parallel "$@" "$attnsec" batch run -q --task-index={} "$dir"
"$attnsec" batch status "$dir" || exit $?
exec "$attnsec" batch merge "$dir"
