/** Token of the sample app's `SampleAppConfig`. */
export const SAMPLE_APP_CONFIG = Symbol('SAMPLE_APP_CONFIG');
