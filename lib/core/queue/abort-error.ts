/** The error an identify wait rejects with when its `AbortSignal` fires. */
export function abortError(): Error {
  const error = new Error('The identify wait was cancelled');
  error.name = 'AbortError';
  return error;
}
