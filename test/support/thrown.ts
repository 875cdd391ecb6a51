/**
 * The error a call fails with, for tests that go on to check its code, param or message.
 *
 *   thrownBy(action)          what `action` throws
 *   rejectionOf(promise)      what `promise` rejects with
 *
 * Each checks that the error is a HearthError (or the class it is given) and fails the test,
 * naming what came back, when the call succeeds instead. vitest's `toThrow` and `rejects`
 * check an error but do not hand it over.
 */

import { expect } from "vitest";
import { HearthError } from "../../protocol/errors.js";

type ErrorClass<E> = abstract new (...args: never[]) => E;

export function thrownBy(action: () => unknown): HearthError;
export function thrownBy<E>(action: () => unknown, type: ErrorClass<E>): E;
export function thrownBy(action: () => unknown, type: ErrorClass<unknown> = HearthError): unknown {
  let value: unknown;
  try {
    value = action();
  } catch (error) {
    expect(error).toBeInstanceOf(type);
    return error;
  }
  throw new Error(`expected a throw, got ${shown(value)}`);
}

export async function rejectionOf(promise: Promise<unknown>): Promise<HearthError>;
export async function rejectionOf<E>(promise: Promise<unknown>, type: ErrorClass<E>): Promise<E>;
export async function rejectionOf(promise: Promise<unknown>, type: ErrorClass<unknown> = HearthError): Promise<unknown> {
  const outcome = await promise.then(
    (value: unknown) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!("error" in outcome)) throw new Error(`expected a rejection, got ${shown(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(type);
  return outcome.error;
}

function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
