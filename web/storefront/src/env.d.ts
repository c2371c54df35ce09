/// <reference types="vite/client" />
// Build-time settings (Vite reads VITE_* from the environment or web/.env at `npm run build`).
interface ImportMetaEnv {
  /** Supabase project URL: sign-in through Supabase Auth instead of the development sign-in. */
  readonly VITE_SUPABASE_URL?: string;
  /** Supabase anon (publishable) key, public by design. */
  readonly VITE_SUPABASE_ANON_KEY?: string;
  /** Toss client key (test_ck_… / live_ck_…); otherwise the server's GET /v1/config is used. */
  readonly VITE_TOSS_CLIENT_KEY?: string;
}
interface ImportMeta {
  readonly env: ImportMetaEnv;
}
