#!/bin/sh
# slurm-localhost.sh - exercise the Slurm path of 'attnsec batch' once, on a
# single-node Slurm brought up on this host (Debian: slurm-wlm, munge).
# Needs root (it starts munged, slurmctld and slurmd with a private
# configuration under a temporary directory, and stops them at the end);
# not part of make check.
#
#   sudo ATTNSEC=build/src/cli/attnsec ASEC_SRCDIR=$PWD sh tests/batch/slurm-localhost.sh
#
# It plans the 50-task campaign of kill-resume.sh, submits it with the
# installed template slurm-submit.sh (a job array over the task indices with
# --task-index=auto, plus a merge job with --dependency=afterany), waits for
# the merge, and compares the merged output with a local pool run.
# Exit: 0 pass, 1 fail, 77 skip (no Slurm, no munge, not root).
set -u
: "${ATTNSEC:?ATTNSEC must name the attnsec binary}"
: "${ASEC_SRCDIR:?ASEC_SRCDIR must name the source tree}"
ATTNSEC_DATADIR=${ATTNSEC_DATADIR:-$ASEC_SRCDIR/datasets}
export ATTNSEC_DATADIR
for p in slurmctld slurmd munged sbatch squeue; do
    command -v $p >/dev/null 2>&1 || { echo "no $p (Debian: slurm-wlm munge); skipping"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "needs root to start the daemons; skipping"; exit 77; }

w=$(mktemp -d /tmp/asec-slurm.XXXXXX)
chmod 755 "$w"
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$w/spool" "$w/state" "$w/munge" "$w/campaign"
cat >"$w/slurm.conf" <<CONF
ClusterName=attnsec-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$w/munge/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPort=16817
SlurmdPort=16818
SlurmctldPidFile=$w/slurmctld.pid
SlurmdPidFile=$w/slurmd.pid
SlurmdSpoolDir=$w/spool
StateSaveLocation=$w/state
SlurmctldLogFile=$w/slurmctld.log
SlurmdLogFile=$w/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MaxArraySize=1001
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
: >"$w/cgroup.conf"
SLURM_CONF=$w/slurm.conf
export SLURM_CONF

cleanup() {
    [ -f "$w/slurmd.pid" ] && kill "$(cat "$w/slurmd.pid")" 2>/dev/null
    [ -f "$w/slurmctld.pid" ] && kill "$(cat "$w/slurmctld.pid")" 2>/dev/null
    [ -f "$w/munge/munged.pid" ] && kill "$(cat "$w/munge/munged.pid")" 2>/dev/null
    sleep 1
    [ -n "${KEEP:-}" ] || rm -rf "$w"
}
trap cleanup EXIT

munged --force --socket="$w/munge/munge.socket" --pid-file="$w/munge/munged.pid" \
    --log-file="$w/munge/munged.log" --seed-file="$w/munge/munged.seed" || exit 1
slurmctld -f "$w/slurm.conf" || { cat "$w/slurmctld.log"; exit 1; }
slurmd -f "$w/slurm.conf" || { cat "$w/slurmd.log"; exit 1; }
i=0
until sinfo -h -o '%T' 2>/dev/null | grep -q idle; do
    i=$((i + 1))
    [ "$i" -le 30 ] || { echo "FAIL: the node never became idle"; sinfo; tail "$w/slurmctld.log" "$w/slurmd.log"; exit 1; }
    sleep 1
done
echo "slurm-localhost: $(sinfo -h -o '%P %D nodes %c cpus %T' | head -n 1) ($(sinfo -V))"

sed "s|@DATADIR@|$ATTNSEC_DATADIR|g" "$ASEC_SRCDIR/tests/batch/campaign50.json" >"$w/m.json"
"$ATTNSEC" batch plan -q "$w/m.json" -o "$w/local" || exit 1
OPENBLAS_NUM_THREADS=1 "$ATTNSEC" batch run -q -j "$cpus" "$w/local" || exit 1
"$ATTNSEC" batch merge -q --plot=none "$w/local" || exit 1

d=$w/campaign/sweep
"$ATTNSEC" batch plan -q "$w/m.json" -o "$d" || exit 1
cd "$w/campaign" || exit 1
ATTNSEC=$ATTNSEC sh "$ASEC_SRCDIR/tests/batch/slurm-submit.sh" "$d" 8 --chdir="$w/campaign" \
    >"$w/submit.out" || { cat "$w/submit.out"; exit 1; }
cat "$w/submit.out"
mid=$(sed -n 's/.*merge job \([0-9]*\).*/\1/p' "$w/submit.out")
i=0
while squeue -h -j "$mid" 2>/dev/null | grep -q .; do
    i=$((i + 1))
    [ "$i" -le 600 ] || { echo "FAIL: merge job $mid still queued after 600 s"; squeue; exit 1; }
    sleep 1
done
echo "slurm-localhost: array and merge jobs finished after ${i} s"
"$ATTNSEC" batch status "$d"
st=0
for f in results.csv results.json; do
    if cmp "$w/local/merged/$f" "$d/merged/$f"; then
        echo "slurm-localhost: merged/$f byte-identical to the local pool run"
    else
        echo "FAIL: merged/$f differs (or is missing) after the Slurm run"
        cat "$d"/merge-*.log 2>/dev/null
        st=1
    fi
done
nlogs=$(ls "$w/campaign"/attnsec-*_*.log 2>/dev/null | wc -l)
echo "slurm-localhost: $nlogs array task logs"
exit $st
