// A real OpenID provider for integration/oidc.rs: the npm package
// `oidc-provider` (OpenID Certified), fetched by .ci/fetch-oidc-provider.sh.
// One confidential client (the clawscale server under test); people are
// read from ACCOUNTS_FILE at every login, so the test can change a
// person's groups between logins. Sign-in is oidc-provider's development
// form (any password); consent is implied for the one client.
//
// Env: OIDC_PROVIDER_DIR (the directory holding node_modules), ISSUER, HOST, PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
//      ACCOUNTS_FILE ({"alice": {"email": ..., "groups": [...]}, ...}).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};
// ES modules ignore NODE_PATH: load the package from where the fetch
// script installed it.
const entry = path.join(env('OIDC_PROVIDER_DIR'), 'node_modules/oidc-provider/lib/index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const accounts = () => JSON.parse(fs.readFileSync(env('ACCOUNTS_FILE'), 'utf8'));
const SCOPE = 'openid email profile groups';

const provider = new Provider(env('ISSUER'), {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  scopes: SCOPE.split(' '),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'picture'],
    groups: ['groups'],
  },
  // oidc-provider's default (conformIdTokenClaims): the scopes' claims
  // (e-mail, profile, groups) go to the userinfo endpoint only, never the
  // ID token, so the server must fetch them there. Providers that put them
  // in the ID token (Keycloak, Google) are covered by src/auth/oidc/tests.rs.
  pkce: { required: () => true },
  cookies: { keys: ['clawscale-integration-test'] },
  async findAccount(ctx, id) {
    const a = accounts()[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: a.email,
          email_verified: true,
          name: a.name ?? id,
          preferred_username: id,
          picture: `https://example.com/${id}.png`,
          groups: a.groups ?? [],
        };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const id = session.grantIdFor(client.clientId);
    if (id) {
      const g = await ctx.oidc.provider.Grant.find(id);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(SCOPE);
    await grant.save();
    session.grantIdFor(client.clientId, grant.jti);
    return grant;
  },
});

provider.listen(Number(env('PORT')), env('HOST'), () => {
  console.log(`oidc-provider listening on ${env('ISSUER')}`);
});
