module enginebench // internal/loadgen/enginebench/run.sh builds it with server/store.go copied in

go 1.26.8

require (
	go.etcd.io/bbolt v1.4.3
	golang.org/x/sys v0.29.0 // indirect
)
