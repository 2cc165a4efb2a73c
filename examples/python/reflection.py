"""Discover Tessera's API by gRPC server reflection, as a new user's tools
do: Python's grpcio-reflection speaks grpc.reflection.v1alpha. Prints JSON:
the services, and the file and methods of tessera.v1.TokenAuthority.

    python reflection.py 127.0.0.1:50051
"""
import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

channel = grpc.insecure_channel(sys.argv[1])
db = ProtoReflectionDescriptorDatabase(channel)
services = sorted(db.get_services())
pool = DescriptorPool(db)
authority = pool.FindServiceByName("tessera.v1.TokenAuthority")
print(json.dumps({
    "services": services,
    "file": authority.file.name,
    "methods": [m.name for m in authority.methods],
}))
