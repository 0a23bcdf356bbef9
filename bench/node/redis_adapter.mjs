// A Redis storage adapter for oidc-provider, written for the benchmark (the adapter interface
// is the one oidc-provider documents: upsert, find, findByUid, findByUserCode, consume,
// destroy, revokeByGrantId). It keeps what oidc-link's store keeps: every key has a TTL,
// single-use artifacts are marked consumed in one command, and one write is one round trip.
//
// Keys: peer:<Model>:<id>. Models that can be consumed (codes, refresh tokens) are hashes
// {payload, consumed} so that consume() is a single HSET; the rest are plain JSON strings.
// Tokens of one grant are listed in the set peer:grant:<grantId>, for revokeByGrantId.

const PREFIX = 'peer:';

const CONSUMABLE = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

// Without an expiry of its own (oidc-provider passes none for a few models), a key still
// goes away after this long: the benchmark never leaves a key without a TTL.
const FALLBACK_TTL = 14 * 24 * 3600;

const epochNow = () => Math.floor(Date.now() / 1000);

export function redisAdapterFactory(redis, grantTtl) {
  class RedisAdapter {
    constructor(model) {
      this.model = model;
      this.consumable = CONSUMABLE.has(model);
      this.grantable = GRANTABLE.has(model);
    }

    key(id) {
      return `${PREFIX}${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const ttl = typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : FALLBACK_TTL;
      const json = JSON.stringify(payload);
      const indexed = (this.grantable && payload.grantId) || this.model === 'Session'
        || payload.userCode;
      if (!this.consumable && !indexed) {
        await redis.set(key, json, 'EX', ttl);
        return;
      }
      const batch = redis.multi();
      if (this.consumable) {
        // A fresh record: drop a previous 'consumed' mark along with the old payload.
        batch.del(key).hset(key, 'payload', json).expire(key, ttl);
      } else {
        batch.set(key, json, 'EX', ttl);
      }
      if (this.grantable && payload.grantId) {
        // The set lives as long as a grant can: no token of the grant outlives it.
        const grantKey = `${PREFIX}grant:${payload.grantId}`;
        batch.sadd(grantKey, key).expire(grantKey, grantTtl);
      }
      if (this.model === 'Session') {
        batch.set(`${PREFIX}sessionUid:${payload.uid}`, id, 'EX', ttl);
      }
      if (payload.userCode) {
        batch.set(`${PREFIX}userCode:${payload.userCode}`, id, 'EX', ttl);
      }
      await batch.exec();
    }

    async find(id) {
      const key = this.key(id);
      if (!this.consumable) {
        const json = await redis.get(key);
        return json ? JSON.parse(json) : undefined;
      }
      const record = await redis.hgetall(key);
      if (!record || !record.payload) {
        return undefined;
      }
      const payload = JSON.parse(record.payload);
      if (record.consumed) {
        payload.consumed = Number(record.consumed);
      }
      return payload;
    }

    async findByUid(uid) {
      const id = await redis.get(`${PREFIX}sessionUid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = await redis.get(`${PREFIX}userCode:${userCode}`);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      // HSET on a hash that expired would create a key without a TTL: only mark a live one.
      await redis.eval(
        "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'consumed', ARGV[1]) end return 0",
        1,
        this.key(id),
        String(epochNow()),
      );
    }

    async destroy(id) {
      await redis.del(this.key(id));
    }

    async revokeByGrantId(grantId) {
      const grantKey = `${PREFIX}grant:${grantId}`;
      const members = await redis.smembers(grantKey);
      await redis.del(grantKey, ...members);
    }
  }
  return RedisAdapter;
}
