/**
 * HTTP/2 headers (node:http2's plain object: a string or a list of strings per name) as fetch-style
 * Headers, the shape Connect's errors and handler contexts carry; pseudo-headers (":path",
 * ":status", …) are left out.
 */
export function webHeadersOf(raw: Readonly<Record<string, string | string[] | undefined>>): Headers {
  const out = new Headers();
  for (const key in raw) {
    if (key.charCodeAt(0) === 58 /* ':' */) continue;
    const value = raw[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else out.append(key, value);
  }
  return out;
}
