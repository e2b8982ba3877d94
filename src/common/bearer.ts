/**
 * The request header that carries a bearer token, in one place for every caller: the SDK (so this module
 * imports nothing and stays loadable in browsers), brokers calling sentinels, sentinels calling brokers.
 * No token, no header.
 */
export function bearerHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}
