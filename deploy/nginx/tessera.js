// nginx `auth_request` handler: introspect the request's bearer token with
// Tessera (RFC 7662) and answer 204 with the identity headers for an active
// token, 401 with an RFC 6750 challenge for any other, 503 when Tessera
// cannot answer (which auth_request turns into 500: never an allow).

async function check(r) {
  const m = /^Bearer\s+([A-Za-z0-9._~+\/-]+=*)\s*$/i.exec(r.headersIn.Authorization || '');
  if (!m) {
    r.headersOut['WWW-Authenticate'] = 'Bearer';
    r.return(401);
    return;
  }
  let reply;
  try {
    reply = await r.subrequest('/_tessera_introspect', {
      args: 'token=' + encodeURIComponent(m[1]),
    });
  } catch (e) {
    r.error('tessera introspection failed: ' + e);
    r.return(503);
    return;
  }
  if (reply.status !== 200) {
    r.error('tessera introspection answered HTTP ' + reply.status);
    r.return(503);
    return;
  }
  let claims;
  try {
    claims = JSON.parse(reply.responseText);
  } catch (e) {
    r.error('tessera introspection answered no JSON');
    r.return(503);
    return;
  }
  if (claims.active !== true) {
    r.headersOut['WWW-Authenticate'] = 'Bearer error="invalid_token"';
    r.return(401);
    return;
  }
  r.headersOut['X-Tessera-Subject'] = claims.sub || '';
  r.headersOut['X-Tessera-Tenant'] = claims.tid || '';
  r.headersOut['X-Tessera-Session'] = claims.sid || '';
  r.headersOut['X-Tessera-Scopes'] = claims.scope || '';
  r.headersOut['X-Tessera-Roles'] = (claims.roles || []).join(' ');
  r.return(204);
}

export default { check };
