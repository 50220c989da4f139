import { GatewayOpcodes } from 'discord-api-types/v10';
import type { LocalGateway } from '../../lib/nest/testing';

/**
 * Per the gateway's connection log: every time a shard had two connections at once whose IDENTIFY or RESUME was
 * accepted (from the handshake until the server saw the connection close), one line each; none is the goal.
 */
export function overlappingConnections(gateway: LocalGateway): string[] {
  const spans = new Map<number, { id: number; from: number; to: number }[]>();
  for (const connection of gateway.connections) {
    const handshake = connection.frames.find((f) => f.op === GatewayOpcodes.Identify || f.op === GatewayOpcodes.Resume);
    if (!handshake || handshake.shardId === null || !connection.handshakeDone) continue;
    const list = spans.get(handshake.shardId) ?? [];
    list.push({ id: connection.id, from: handshake.at, to: connection.closedAt ?? Infinity });
    spans.set(handshake.shardId, list);
  }
  const overlaps: string[] = [];
  for (const [shardId, list] of spans) {
    list.sort((a, b) => a.from - b.from);
    for (let i = 1; i < list.length; i++) {
      if (list[i].from < list[i - 1].to) {
        overlaps.push(`shard ${shardId}: connection ${list[i].id} started at ${list[i].from} before ${list[i - 1].id} closed at ${list[i - 1].to}`);
      }
    }
  }
  return overlaps;
}
