/** `session_start_limit` as `GET /gateway/bot` reports it. */
export interface LocalSessionStartLimit {
  /** @defaultValue `1000` */
  total: number;
  /** @defaultValue `1000` */
  remaining: number;
  /** Milliseconds until `remaining` resets. @defaultValue `86400000` */
  reset_after: number;
  /** @defaultValue `1` */
  max_concurrency: number;
}

/**
 * Chaos mode of the {@link LocalGateway}: it re-sends events a client already has, as a gateway may after a
 * failover, so that the client's duplicate filter is exercised. Every choice comes from `random`.
 */
export interface LocalGatewayChaosOptions {
  /** Random source of every choice (a seeded one makes a run repeatable). @defaultValue `Math.random` */
  random?: () => number;
  /**
   * Chance that a RESUME's replay starts before the RESUME's `seq`: from 1 to `maxReplayOverlap` events the client
   * already had are sent again ahead of the missed ones. @defaultValue `0.5`
   */
  replayOverlapChance?: number;
  /** @defaultValue `20` */
  maxReplayOverlap?: number;
  /**
   * Chance, per dispatch to a connected session, that one of the session's last ten dispatches (this one included)
   * is sent again right after it. @defaultValue `0.01`
   */
  resendChance?: number;
}

/**
 * Options of the {@link LocalGateway}. Every field has a default that behaves like Discord, with short timings
 * where a test would otherwise wait.
 */
export interface LocalGatewayOptions {
  /** The token clients must present (with or without a `Bot ` prefix). @defaultValue `'local-gateway-token'` */
  token?: string;
  /** `heartbeat_interval` sent in HELLO, ms. @defaultValue `41250` */
  heartbeatInterval?: number;
  /** Recommended shard count returned by `GET /gateway/bot`. @defaultValue `1` */
  shards?: number;
  /** `session_start_limit` returned by `GET /gateway/bot`. */
  sessionStartLimit?: Partial<LocalSessionStartLimit>;
  /**
   * Close with op 9 any IDENTIFY that comes sooner than this after another of the same
   * `shard_id % max_concurrency` key, as Discord does. 0 turns the check off. @defaultValue `0`
   */
  identifyWindowMs?: number;
  /** `resume_gateway_url` sent in READY. @defaultValue this server's URL with path `/resume` */
  resumeUrl?: string;
  /** Guild ids the bot is in; each shard's READY lists the ones it owns, then sends a GUILD_CREATE for each. @defaultValue `[]` */
  guilds?: string[];
  /** Sequence number of READY on a new session (real servers have been seen to start at 0). @defaultValue `1` */
  firstSequence?: number;
  /** Privileged intent bits the bot may use; others close with 4014. @defaultValue all three privileged intents */
  allowedPrivilegedIntents?: number;
  /** Frames a client may send per `commandWindowMs` before it is closed with 4008. @defaultValue `120` */
  commandLimit?: number;
  /** @defaultValue `60000` */
  commandWindowMs?: number;
  /** Split each compressed message into this many WebSocket frames. @defaultValue `1` */
  compressedFramesPerMessage?: number;
  /**
   * Members of every guild, answered to op 8 Request Guild Members: member `i` of a guild is
   * `createMember(guildMemberSeed(guildId, i))`. @defaultValue `0`
   */
  membersPerGuild?: number;
  /**
   * A full member list (`query: ""`, `limit: 0`) may be requested once per guild per this many ms; a request that
   * comes sooner is answered with a `RATE_LIMITED` dispatch, as Discord does. @defaultValue `30000`
   */
  memberRequestCooldownMs?: number;
  /** Chaos mode: overlapping replays on RESUME and re-sent events. @defaultValue off */
  chaos?: LocalGatewayChaosOptions;
}
