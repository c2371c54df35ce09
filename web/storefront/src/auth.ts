// Who the buyer is. Production: Supabase Auth (VITE_SUPABASE_URL + VITE_SUPABASE_ANON_KEY at
// build time; email magic link), whose access token the server verifies. Development: one click
// asks the server's development-only endpoint (POST /v1/dev/token, absent when
// COURSEPAY_ENV=production) for a token of a fresh user, kept in localStorage so the same buyer
// comes back after a reload or a closed tab.
import type { Api } from '@coursepay/client';

export interface Session {
  accessToken: string;
  userId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface Auth {
  readonly kind: 'dev' | 'supabase';
  session(): Session | null;
  init(): Promise<void>;
  /** Dev: signs in at once. Supabase: sends the magic link to `email`. */
  signIn(email?: string): Promise<'signed-in' | 'email-sent'>;
  signOut(): Promise<void>;
  subscribe(listener: () => void): () => void;
}

type KV = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
export const DEV_SESSION_KEY = 'coursepay.devSession';

abstract class Listeners {
  private listeners = new Set<() => void>();
  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  protected emit(): void {
    for (const l of this.listeners) l();
  }
}

export class DevAuth extends Listeners implements Auth {
  readonly kind = 'dev';
  private current: Session | null = null;
  constructor(
    private readonly api: Pick<Api, 'devToken'>,
    private readonly storage: KV,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  async init(): Promise<void> {
    const raw = this.storage.getItem(DEV_SESSION_KEY);
    if (!raw) return;
    try {
      const s = JSON.parse(raw) as Session;
      if (s.expiresAt - this.now() > 60_000) {
        this.current = s;
      } else {
        // Expired: mint a new token for the same user so "my courses" survives.
        await this.mint(s.userId);
      }
    } catch {
      this.storage.removeItem(DEV_SESSION_KEY);
    }
    this.emit();
  }

  session(): Session | null {
    return this.current;
  }

  private async mint(userId?: string): Promise<void> {
    const t = await this.api.devToken(userId);
    this.current = { accessToken: t.accessToken, userId: t.userId, expiresAt: Date.parse(t.expiresAt) };
    this.storage.setItem(DEV_SESSION_KEY, JSON.stringify(this.current));
  }

  async signIn(): Promise<'signed-in'> {
    await this.mint(this.current?.userId);
    this.emit();
    return 'signed-in';
  }

  async signOut(): Promise<void> {
    this.current = null;
    this.storage.removeItem(DEV_SESSION_KEY);
    this.emit();
  }
}

export class SupabaseAuth extends Listeners implements Auth {
  readonly kind = 'supabase';
  private current: Session | null = null;
  private client: InstanceType<typeof import('@supabase/auth-js').AuthClient> | null = null;
  constructor(
    private readonly url: string,
    private readonly anonKey: string,
  ) {
    super();
  }

  async init(): Promise<void> {
    // Loaded on demand: development builds never fetch it.
    const { AuthClient } = await import('@supabase/auth-js');
    this.client = new AuthClient({
      url: `${this.url.replace(/\/$/, '')}/auth/v1`,
      headers: { apikey: this.anonKey, Authorization: `Bearer ${this.anonKey}` },
      storageKey: 'coursepay.supabase',
      persistSession: true,
      autoRefreshToken: true,
      detectSessionInUrl: true,
    });
    this.client.onAuthStateChange((_event, s) => {
      this.current = s
        ? { accessToken: s.access_token, userId: s.user.id, expiresAt: (s.expires_at ?? 0) * 1000 }
        : null;
      this.emit();
    });
    await this.client.getSession();
  }

  session(): Session | null {
    return this.current;
  }

  async signIn(email?: string): Promise<'email-sent'> {
    if (!this.client || !email) throw new Error('email required');
    const { error } = await this.client.signInWithOtp({
      email,
      options: { emailRedirectTo: `${window.location.origin}/me` },
    });
    if (error) throw error;
    return 'email-sent';
  }

  async signOut(): Promise<void> {
    await this.client?.signOut();
  }
}

export function chooseAuth(
  env: { VITE_SUPABASE_URL?: string; VITE_SUPABASE_ANON_KEY?: string },
  api: Pick<Api, 'devToken'>,
  storage: KV,
): Auth {
  if (env.VITE_SUPABASE_URL && env.VITE_SUPABASE_ANON_KEY) {
    return new SupabaseAuth(env.VITE_SUPABASE_URL, env.VITE_SUPABASE_ANON_KEY);
  }
  return new DevAuth(api, storage);
}
