"""A third-party gRPC client against a running identity service.

Python grpcio, knowing nothing of our code: it checks health, discovers the API by
server reflection (grpc.reflection.v1alpha, the only version Python's client speaks),
builds message classes from the reflected descriptors, and calls Register and Login.
Exits non-zero on the first surprise.

usage: grpc_client_check.py HOST:PORT
"""

import sys
import time
import uuid

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

SERVICE = "festival.identity.v1.IdentityService"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_serving(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    fail("identity never reported SERVING")


def unary(channel, pool, name):
    method = pool.FindServiceByName(SERVICE).methods_by_name[name]
    request_cls = GetMessageClass(method.input_type)
    response_cls = GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{SERVICE}/{name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_cls.FromString,
    )
    return request_cls, call


def error_reason(err):
    status = rpc_status.from_call(err)
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return None


def main():
    target = sys.argv[1]
    channel = grpc.insecure_channel(target)
    wait_serving(channel)

    reflection_db = ProtoReflectionDescriptorDatabase(channel)
    services = set(reflection_db.get_services())
    for expected in (SERVICE, "grpc.health.v1.Health"):
        if expected not in services:
            fail(f"reflection does not list {expected}: {sorted(services)}")
    # Only what identity answers: no other service's methods that would say UNIMPLEMENTED.
    strangers = sorted(s for s in services if s.startswith("festival.") and s != SERVICE)
    if strangers:
        fail(f"reflection advertises services identity does not serve: {strangers}")
    pool = descriptor_pool.DescriptorPool(reflection_db)

    email = f"python-{uuid.uuid4().hex[:10]}@example.org"
    password = "correct horse battery staple"
    Register, register = unary(channel, pool, "Register")
    user = register(Register(email=email, password=password, display_name="Py Client"), timeout=10).user
    if user.email != email or not user.id:
        fail(f"unexpected Register answer: {user}")

    try:
        register(Register(email="not-an-email", password=password), timeout=10)
        fail("a malformed email was accepted")
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.INVALID_ARGUMENT or error_reason(err) != "ERR_10002":
            fail(f"malformed email: got {err.code()} {error_reason(err)}")

    Login, login = unary(channel, pool, "Login")
    tokens = login(Login(email=email, password=password), timeout=10)
    if tokens.token_type != "Bearer" or tokens.access_token.count(".") != 2 or not tokens.refresh_token.startswith("rt_"):
        fail(f"unexpected Login answer: {tokens}")
    try:
        login(Login(email=email, password="wrong password, clearly"), timeout=10)
        fail("a wrong password was accepted")
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNAUTHENTICATED or error_reason(err) != "ERR_2001":
            fail(f"wrong password: got {err.code()} {error_reason(err)}")

    GetMe, get_me = unary(channel, pool, "GetMe")
    me = get_me(GetMe(), metadata=[("authorization", f"Bearer {tokens.access_token}")], timeout=10)
    if me.id != user.id:
        fail(f"GetMe answered for someone else: {me}")

    print(f"python grpcio: health SERVING, reflection listed {len(services)} services, Register/Login/GetMe OK")


if __name__ == "__main__":
    main()
