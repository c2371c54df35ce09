// Error messages for people. The server publishes one message per error code and locale at
// GET /v1/i18n/{locale} (`ui.payment.error.<CODE>`); the client adds the few codes it produces
// itself and a generic fallback, so every error has a sentence in Korean and in English.
import { NETWORK_ERROR, UNEXPECTED_RESPONSE } from './errors';

export const MESSAGE_PREFIX = 'ui.payment.error.';

const CLIENT_MESSAGES: Record<'ko' | 'en', Record<string, string>> = {
  ko: {
    [NETWORK_ERROR]: '서버에 연결할 수 없습니다. 네트워크 연결을 확인한 뒤 다시 시도해 주세요.',
    [UNEXPECTED_RESPONSE]: '서버가 예상하지 못한 응답을 보냈습니다. 잠시 후 다시 시도해 주세요.',
    fallback: '요청을 처리하지 못했습니다. 잠시 후 다시 시도해 주세요.',
  },
  en: {
    [NETWORK_ERROR]: 'Could not reach the server. Check your connection and try again.',
    [UNEXPECTED_RESPONSE]: 'The server sent an unexpected answer. Please try again shortly.',
    fallback: 'The request could not be completed. Please try again shortly.',
  },
};

/** The message for `code` in `locale`: the server's, else the client's own, else a generic one. */
export function errorMessage(
  code: string,
  locale: 'ko' | 'en',
  serverMessages: Record<string, string> | undefined,
): string {
  const own = CLIENT_MESSAGES[locale];
  return serverMessages?.[MESSAGE_PREFIX + code] ?? own[code] ?? own.fallback ?? code;
}
