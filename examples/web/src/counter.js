// The claimable counter's rules, written again in JavaScript on @krmx/state's StreamModel, as a Krmx user
// would: the same events and refusal reasons as the C++ model in examples/claimable_counter/counter.hpp,
// so that an optimistic move the server will refuse is already refused here.
import { StreamModel } from '@krmx/state';
import { z } from 'zod';

export function counterModel() {
  const model = new StreamModel({ counter: 0, claim: undefined });
  const increment = model.when('increment', z.number().int(), (state, dispatcher, payload) => {
    if (state.claim !== undefined && state.claim !== dispatcher) throw new Error('claimed by someone else');
    state.counter += payload;
  });
  const claim = model.when('claim', z.undefined(), (state, dispatcher) => {
    if (state.claim !== undefined) throw new Error('already claimed');
    state.claim = dispatcher;
  });
  const release = model.when('release', z.undefined(), (state, dispatcher) => {
    if (state.claim !== dispatcher) throw new Error('claimed by someone else');
    state.claim = undefined;
  });
  return { model, increment, claim, release };
}
