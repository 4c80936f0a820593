export { DEFAULT_MAX_LAG_EVENTS, type StreamSubscribeOptions, type SubscribeOptions, type SubscriptionMessage } from './subscribe.js';
