import { writeSync } from 'node:fs';
import type { LoggerService } from '@nestjs/common';

/** Writes one JSON line to stdout synchronously, so that nothing printed is lost when the process is killed right after. */
export function print(value: object): void {
  const buffer = Buffer.from(`${JSON.stringify(value)}\n`);
  for (let offset = 0; offset < buffer.length; ) {
    try {
      offset += writeSync(1, buffer, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}

/** A logger of test processes: passes warnings, errors and the debug lines of the contexts `debugOf` accepts on as JSON lines; drops the rest. */
export class JsonLinesLogger implements LoggerService {
  constructor(private readonly debugOf: (context: string) => boolean) {}

  log(): void {}
  verbose(): void {}
  debug(message: unknown, context?: string): void {
    if (this.debugOf(String(context))) print({ type: 'log', level: 'debug', context, message: String(message) });
  }
  warn(message: unknown, context?: string): void {
    print({ type: 'log', level: 'warn', context, message: String(message) });
  }
  error(message: unknown, ...rest: unknown[]): void {
    print({ type: 'log', level: 'error', context: String(rest[rest.length - 1] ?? ''), message: String(message) });
  }
  fatal(message: unknown): void {
    print({ type: 'log', level: 'fatal', message: String(message) });
  }
}
