module evloopbench // internal/loadgen/evloopbench/run.sh: a measurement prototype, not part of gearflow

go 1.26.8
