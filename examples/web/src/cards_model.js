// The card game of examples/cards/cards.hpp as @krmx/state's ProjectionClient needs it: the actions'
// payload schemas and the optimistic handler of `play` (the same as the C++ model's). The rules run on the
// server; a client never calls the state handlers.
import { ProjectionModel } from '@krmx/state';
import { z } from 'zod';

export function cardsModel() {
  const model = new ProjectionModel({}, () => ({}));
  const serverOnly = () => { throw new Error('the server runs the rules'); };
  const sit = model.when('sit', z.undefined(), serverOnly);
  const play = model.when('play', z.number().int(), serverOnly, (view, dispatcher, card) => {
    const at = view.hand.indexOf(card);
    if (at === -1) throw new Error('not in your hand');
    view.hand.splice(at, 1);
    view.top = card;
  });
  const draw = model.when('draw', z.undefined(), serverOnly);
  return { model, sit, play, draw };
}

const suits = ['♠', '♥', '♦', '♣'];
const ranks = ['A', '2', '3', '4', '5', '6', '7', '8', '9', '10', 'J', 'Q', 'K'];
/** A card 0..51 as text: rank and suit. */
export const cardName = (card) => `${ranks[card % 13]}${suits[Math.floor(card / 13)]}`;
/** Whether `card` may go on `top`: the same suit or the same rank. */
export const matches = (card, top) => Math.floor(card / 13) === Math.floor(top / 13) || card % 13 === top % 13;
