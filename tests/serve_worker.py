"""A serve process over a fake-engine run, each engine call slowed (for the kill -9 test):
python serve_worker.py RUN_DIR PORT"""
import sys

import uvicorn
from cascade_run import factory

from s2distill.serve import CascadeService, make_app

run, port = sys.argv[1], int(sys.argv[2])
svc = CascadeService(run, backend_factory=factory(delay_s=0.05), log=lambda s: None)
uvicorn.run(make_app(svc), host="127.0.0.1", port=port, log_level="warning")
