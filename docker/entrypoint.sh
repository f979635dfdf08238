#!/usr/bin/env bash
# Tessera container entrypoint. The first argument names the role:
#
#   web [command...]   apply migrations, then exec the command (default: gunicorn)
#   gunicorn ...       the same as "web gunicorn ..." (the image's default command)
#   worker [args...]   celery worker (extra arguments go to celery, e.g. --concurrency 4)
#   beat [args...]     celery beat, schedule state in /tmp (run exactly one beat)
#   anything else      exec'd as given (e.g. "python manage.py createsuperuser")
set -euo pipefail

# Same command as the Dockerfile's CMD, for a bare "web".
default_web_command=(
    gunicorn cdp.wsgi:application
    --bind 0.0.0.0:8000
    --worker-tmp-dir /dev/shm
    --no-control-socket
    --access-logfile -
    --access-logformat '%(t)s "%(m)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
    --error-logfile -
)

migrate() {
    echo "entrypoint: applying database migrations" >&2
    python manage.py migrate --noinput
}

if [ "$#" -eq 0 ]; then
    set -- web
fi

case "$1" in
    web)
        shift
        if [ "$#" -eq 0 ]; then
            set -- "${default_web_command[@]}"
        fi
        migrate
        exec "$@"
        ;;
    gunicorn)
        migrate
        exec "$@"
        ;;
    worker)
        shift
        # One BLAS thread per process: Celery already runs one process per core, and
        # the recommender's matrix code would otherwise oversubscribe the CPUs.
        export OPENBLAS_NUM_THREADS=1
        exec celery -A cdp worker -l info "$@"
        ;;
    beat)
        shift
        exec celery -A cdp beat -l info --schedule /tmp/celerybeat-schedule "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
