#!/bin/sh
# slurm-submit.sh - submit an attnsec batch campaign as a Slurm job array
# plus a dependent merge job.
#   sh slurm-submit.sh DIR [MAX_RUNNING] [EXTRA_SBATCH_OPTIONS...]
# Only the tasks without a valid result are submitted, so the same command
# resumes a campaign.  Prints the two job ids.
set -eu
dir=${1:?usage: slurm-submit.sh DIR [MAX_RUNNING] [SBATCH_OPTION...]}
max=${2:-32}
shift $(($# >= 2 ? 2 : 1))
attnsec=${ATTNSEC:-attnsec}
here=$(cd "$(dirname "$0")" && pwd)
todo=$("$attnsec" batch status --array "$dir" || true)
if [ -z "$todo" ]; then
    echo "slurm-submit: every task of $dir is done; merging" >&2
    exec "$attnsec" batch merge "$dir"
fi
jid=$(sbatch --parsable "$@" --array="$todo%$max" --export=ALL,ATTNSEC="$attnsec" \
    "$here/slurm-array.sbatch" "$dir")
mid=$(sbatch --parsable "$@" --dependency=afterany:"$jid" --job-name=attnsec-merge \
    --output="$dir/merge-%j.log" --wrap "'$attnsec' batch merge '$dir'")
echo "array job $jid ($todo), merge job $mid"
