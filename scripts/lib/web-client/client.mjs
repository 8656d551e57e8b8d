// A browser's gRPC-web client (Connect's gRPC-web transport, the one web apps ship),
// run by Node against the gateway. Exits non-zero on the first surprise.
// usage: node client.mjs http://127.0.0.1:PORT
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { IdentityService } from "./gen/festival/identity/v1/identity_pb.js";

const baseUrl = process.argv[2];
const fail = (msg) => {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
};

// The catalogue code from the google.rpc.ErrorInfo detail (field 1, `reason`).
const reason = (err) => {
  for (const d of err.details ?? []) {
    if (d.type === "google.rpc.ErrorInfo" && d.value[0] === 0x0a) {
      return new TextDecoder().decode(d.value.subarray(2, 2 + d.value[1]));
    }
  }
  return undefined;
};

const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
const client = createClient(IdentityService, transport);
const email = `web-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
const password = "correct horse battery staple";

const { user } = await client.register({ email, password, displayName: "Web Fan" });
if (user?.email !== email) fail(`unexpected Register answer ${JSON.stringify(user)}`);

try {
  await client.register({ email: "not-an-email", password });
  fail("a malformed email was accepted");
} catch (err) {
  if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument || reason(err) !== "ERR_10002") {
    fail(`malformed email: got ${err}`);
  }
}

const tokens = await client.login({ email, password });
if (!tokens.accessToken || !tokens.refreshToken.startsWith("rt_")) fail("Login returned no tokens");
const me = await client.getMe({}, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
if (me.id !== user.id) fail(`GetMe answered for ${me.id}`);

try {
  await client.getMe({});
  fail("GetMe without a token was accepted");
} catch (err) {
  if (err.code !== Code.Unauthenticated || reason(err) !== "ERR_2000") fail(`anonymous GetMe: got ${err}`);
}

const jwks = await client.getJwks({});
if (jwks.keys.length < 1 || jwks.keys[0].kty !== "OKP") fail("no signing key published");

console.log("connect-web gRPC-web: Register, Login, GetMe, GetJwks OK; ErrorInfo codes read back");
