module github.com/gearflow/gearflow

go 1.26.8

require (
	github.com/google/uuid v1.6.0
	github.com/klauspost/compress v1.19.2
	github.com/vmihailenco/msgpack/v5 v5.4.1
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)
