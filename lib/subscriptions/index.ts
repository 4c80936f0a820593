export { DEFAULT_MAX_LAG_EVENTS, type StreamSubscribeOptions, type SubscribeOptions, type SubscriptionMessage } from './subscribe.js';
export { consumerStreamOf, type ConsumerMessage, type ConsumerOptions, type Projection } from './consumer.js';
