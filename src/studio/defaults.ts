/**
 * The user's own generation defaults, in two layers above the environment: runtime values
 * (`set_defaults`, gone when the studio restarts) and persisted values (`set_defaults(persist=true)`,
 * kept in SQLite until changed).
 */
import type { Scalar } from "./records";

export type DefaultsLayer = Record<string, Record<string, Scalar>>;

export interface DefaultsLayers {
  runtime: DefaultsLayer;
  persisted: DefaultsLayer;
}

export class DefaultsStore {
  private readonly runtime: DefaultsLayer = {};

  constructor(private readonly sql: SqlStorage) {}

  layers(): DefaultsLayers {
    const persisted: DefaultsLayer = {};
    for (const row of this.sql
      .exec<{ namespace: string; key: string; value: string }>("SELECT namespace, key, value FROM defaults")
      .toArray()) {
      (persisted[row.namespace] ??= {})[row.key] = JSON.parse(row.value) as Scalar;
    }
    return { runtime: structuredClone(this.runtime), persisted };
  }

  /**
   * Writes to the runtime layer, or with `persist` to the persisted one (clearing the runtime
   * value so it does not shadow it). A null value removes the key from that layer.
   */
  set(namespace: string, values: Record<string, Scalar | null>, persist: boolean): void {
    const runtime = (this.runtime[namespace] ??= {});
    for (const [key, value] of Object.entries(values)) {
      if (!persist) {
        if (value === null) delete runtime[key];
        else runtime[key] = value;
        continue;
      }
      delete runtime[key];
      if (value === null) this.sql.exec("DELETE FROM defaults WHERE namespace = ? AND key = ?", namespace, key);
      else {
        this.sql.exec(
          "INSERT INTO defaults (namespace, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
          namespace,
          key,
          JSON.stringify(value),
          Date.now(),
        );
      }
    }
  }
}
