import { type Attributes, context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

/** A reader that exports nothing: the test collects from it when it wants to look. */
class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }

  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The OpenTelemetry SDK registered globally, as an application's instrumentation file does before
 * it creates the Nest application, with metrics and spans kept in memory for the test to read.
 */
export class TestTelemetry {
  private readonly reader = new CollectingReader();
  private readonly meterProvider = new MeterProvider({ readers: [this.reader] });
  private readonly exporter = new InMemorySpanExporter();
  private readonly tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(this.exporter)],
  });

  /** Registers a fresh SDK in place of any other. */
  static install(): TestTelemetry {
    uninstallTelemetry();
    const telemetry = new TestTelemetry();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    trace.setGlobalTracerProvider(telemetry.tracerProvider);
    return telemetry;
  }

  /** The data points of the metric `name` (cumulative since install), with their attributes. */
  async points<T = number>(name: string): Promise<DataPoint<T>[]> {
    const { resourceMetrics, errors } = await this.reader.collect();
    expect(errors).toEqual([]);
    return resourceMetrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .filter((metric) => metric.descriptor.name === name)
      .flatMap((metric) => metric.dataPoints as DataPoint<T>[]);
  }

  /** The histogram points of `name`. */
  histogram(name: string): Promise<DataPoint<Histogram>[]> {
    return this.points<Histogram>(name);
  }

  /** Every metric name recorded so far. */
  async metricNames(): Promise<string[]> {
    const { resourceMetrics } = await this.reader.collect();
    return resourceMetrics.scopeMetrics.flatMap((scope) =>
      scope.metrics.map((metric) => metric.descriptor.name),
    );
  }

  /** Spans ended so far. */
  spans(): ReadableSpan[] {
    return this.exporter.getFinishedSpans();
  }

  async shutdown(): Promise<void> {
    await this.meterProvider.shutdown();
    await this.tracerProvider.shutdown();
    uninstallTelemetry();
  }
}

/** Leaves no SDK registered: the API's no-ops answer again. */
export function uninstallTelemetry(): void {
  metrics.disable();
  trace.disable();
  context.disable();
}

/** Whether `attributes` hold every entry of `expected`. */
export function hasAttributes(attributes: Attributes, expected: Attributes): boolean {
  return Object.entries(expected).every(([name, value]) => attributes[name] === value);
}
