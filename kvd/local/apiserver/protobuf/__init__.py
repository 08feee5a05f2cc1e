"""Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) for the built-in kinds.

kubectl's typed commands send and ask for protobuf. The server works with JSON-shaped objects
everywhere else, so protobuf is converted at the edge: `convert` turns a message into the JSON
kube-apiserver would have produced for the same object and back, `kinds` finds the message of an
apiVersion and kind, and `envelope` reads and writes the wire form (the `k8s\\0` prefix and
`runtime.Unknown`, and watch frames). The messages are generated from Kubernetes' own
`generated.proto` files (proto/k8s/, `make proto`) into `gen/`.
"""
