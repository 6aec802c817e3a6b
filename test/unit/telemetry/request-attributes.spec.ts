import { ReportedRequest } from '../../../lib/execution/exchange';
import type { RouteIdentity } from '../../../lib/http/route-plan';
import { DurationWindow } from '../../../lib/protocol/retry-after';
import { RequestAttributes, outcomeValue } from '../../../lib/telemetry/request-attributes';

const route: RouteIdentity = {
  name: 'PaymentsController.create',
  controller: 'PaymentsController',
  handler: 'create',
  durations: new DurationWindow(),
  scopeRefusalLogged: false,
};

const reported = (request: Record<PropertyKey, unknown>, method = 'POST') =>
  new ReportedRequest(request, route, method, '/payments/42', 0);

describe('RequestAttributes', () => {
  const express = { route: { path: '/payments/:id' } };
  const fastify = { routeOptions: { url: '/payments/:id' } };

  it('names the route by the template the platform matched, and the method', () => {
    const attributes = new RequestAttributes();
    expect(attributes.of(reported(express)).withOutcome('key-missing')).toEqual({
      'http.route': '/payments/:id',
      'http.request.method': 'POST',
      'idempotency.outcome': 'key_missing',
    });
    expect(attributes.of(reported(fastify, 'PUT')).route).toEqual({
      'http.route': '/payments/:id',
      'http.request.method': 'PUT',
    });
  });

  it('leaves http.route out without a template, and says _OTHER for other methods', () => {
    expect(new RequestAttributes().of(reported({}, 'PROPFIND')).route).toEqual({
      'http.request.method': '_OTHER',
    });
  });

  it('hands every request of a route, method and outcome the same objects', () => {
    const attributes = new RequestAttributes();
    const first = attributes.of(reported(express));
    const second = attributes.of(reported(fastify));
    expect(second).toBe(first);
    expect(second.withOutcome('replayed')).toBe(first.withOutcome('replayed'));
    expect(first.withOutcome('replayed')).not.toBe(first.withOutcome('completed'));
    expect(attributes.of(reported(express, 'PUT'))).not.toBe(first);
  });

  it('spells every outcome in snake_case', () => {
    expect(
      (['not-replayable', 'lease-lost', 'store-error', 'not-fingerprintable'] as const).map(
        outcomeValue,
      ),
    ).toEqual(['not_replayable', 'lease_lost', 'store_error', 'not_fingerprintable']);
  });
});
